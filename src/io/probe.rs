//! Choosing the I/O backend: `auto` probes io_uring and falls back to epoll
//! with one log line; `uring` asked for explicitly fails loudly instead.

use std::fmt;

use config::BackendChoice;

/// The backend actually running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IoKind {
    Uring,
    Epoll,
}

impl fmt::Display for IoKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            IoKind::Uring => "uring",
            IoKind::Epoll => "epoll",
        })
    }
}

#[derive(Debug, thiserror::Error)]
#[error("io_uring was asked for (io: uring) but is unavailable: {0}")]
pub struct UringUnavailable(pub String);

/// Resolves the choice into a backend. `auto` falls back to epoll, logging why.
pub fn select_backend(choice: BackendChoice) -> Result<IoKind, UringUnavailable> {
    match choice {
        BackendChoice::Epoll => Ok(IoKind::Epoll),
        BackendChoice::Uring => uring_available().map(|()| IoKind::Uring).map_err(UringUnavailable),
        BackendChoice::Auto => match uring_available() {
            Ok(()) => Ok(IoKind::Uring),
            Err(why) => {
                tracing::info!(reason = %why, "io_uring unavailable, using epoll");
                Ok(IoKind::Epoll)
            }
        },
    }
}

/// Checks, in order: the `kernel.io_uring_disabled` sysctl, creating a ring with
/// the flags the backend uses (seccomp filters answer EPERM or ENOSYS here), and
/// the opcodes the backend submits.
pub fn uring_available() -> Result<(), String> {
    if let Ok(v) = std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled") {
        if v.trim() == "2" {
            return Err("kernel.io_uring_disabled = 2".into());
        }
    }
    // The driver's flags (SINGLE_ISSUER needs Linux 6.0).
    let ring: io_uring::IoUring = io_uring::IoUring::builder()
        .setup_single_issuer()
        .setup_coop_taskrun()
        .setup_taskrun_flag()
        .build(8)
        .map_err(|e| format!("io_uring_setup failed: {e}"))?;
    let mut probe = io_uring::Probe::new();
    ring.submitter().register_probe(&mut probe).map_err(|e| format!("io_uring probe failed: {e}"))?;
    use io_uring::opcode;
    let needed = [
        ("connect", opcode::Connect::CODE),
        ("recv", opcode::Recv::CODE),
        ("send", opcode::Send::CODE),
        ("async_cancel", opcode::AsyncCancel::CODE),
    ];
    for (name, code) in needed {
        if !probe.is_supported(code) {
            return Err(format!("kernel lacks io_uring opcode {name}"));
        }
    }
    // Receives select buffers from a provided buffer ring (Linux 5.19).
    let ring_memory = super::uring::probe_buffer_ring(&ring);
    ring_memory.map_err(|e| format!("io_uring buffer ring registration failed: {e}"))
}
