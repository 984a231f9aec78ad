//! SO_REUSEPORT listener groups: one listening socket per worker on the same
//! address, so the kernel spreads connections without a shared accept lock.
//!
//! SO_REUSEPORT would also let a second corelink (same user) silently join the
//! group and steal half the connections. Before binding the group we bind a
//! probe socket *without* SO_REUSEPORT: it fails with EADDRINUSE if anything
//! listens there already, reuseport or not. (The probe is closed just before the
//! group binds; a process racing into that gap of a few microseconds is not
//! detected. The second process of the same race fails on its own probe.)

use std::io;
use std::net::{SocketAddr, TcpListener};

use socket2::{Domain, Protocol, Socket, Type};

#[derive(Debug, thiserror::Error)]
pub enum BindError {
    #[error("address {0} is already in use (is another corelink or server running there?)")]
    InUse(SocketAddr),
    #[error("cannot listen on {addr}: {source}")]
    Io { addr: SocketAddr, source: io::Error },
}

fn new_socket(addr: SocketAddr) -> io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    // SO_REUSEADDR lets a restart bind while old connections sit in TIME_WAIT.
    socket.set_reuse_address(true)?;
    Ok(socket)
}

fn classify(addr: SocketAddr, e: io::Error) -> BindError {
    if e.kind() == io::ErrorKind::AddrInUse {
        BindError::InUse(addr)
    } else {
        BindError::Io { addr, source: e }
    }
}

/// Binds `count` listening sockets sharing `addr` with SO_REUSEPORT. Port 0 is
/// resolved by the first bind and shared by the rest.
pub fn bind_reuseport_group(addr: SocketAddr, count: usize, backlog: i32) -> Result<Vec<TcpListener>, BindError> {
    if addr.port() != 0 {
        let probe = new_socket(addr).map_err(|e| classify(addr, e))?;
        probe.bind(&addr.into()).map_err(|e| classify(addr, e))?;
        drop(probe);
    }
    let mut bound = addr;
    let mut group = Vec::with_capacity(count);
    for _ in 0..count.max(1) {
        let socket = new_socket(bound).map_err(|e| classify(bound, e))?;
        socket.set_reuse_port(true).map_err(|e| classify(bound, e))?;
        socket.set_nonblocking(true).map_err(|e| classify(bound, e))?;
        socket.bind(&bound.into()).map_err(|e| classify(bound, e))?;
        socket.listen(backlog).map_err(|e| classify(bound, e))?;
        if bound.port() == 0 {
            let local = socket.local_addr().map_err(|e| classify(bound, e))?;
            bound = local
                .as_socket()
                .ok_or_else(|| BindError::Io { addr, source: io::Error::other("listener has no IP address") })?;
        }
        group.push(socket.into());
    }
    Ok(group)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_zero_is_shared_and_second_group_is_refused() {
        let group = bind_reuseport_group("127.0.0.1:0".parse().unwrap(), 3, 16).unwrap();
        let port = group[0].local_addr().unwrap().port();
        assert!(group.iter().all(|l| l.local_addr().unwrap().port() == port));
        let again = bind_reuseport_group(SocketAddr::from(([127, 0, 0, 1], port)), 2, 16);
        assert!(matches!(again, Err(BindError::InUse(_))), "{again:?}");
    }

    #[test]
    fn plain_listener_blocks_the_group() {
        let plain = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = plain.local_addr().unwrap();
        assert!(matches!(bind_reuseport_group(addr, 1, 16), Err(BindError::InUse(_))));
    }
}
