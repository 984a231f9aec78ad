//! The client side of one connection: read a request head (with the slowloris
//! and idle timeouts), route it, run the exchange, and loop while keep-alive
//! holds. Pipelined requests wait in the read buffer and are answered in order.

use std::mem::MaybeUninit;
use std::rc::Rc;
use std::time::Duration;

use tokio::time::Instant;

use crate::http1::{self, BodyFraming, BodyReader, Limits, Method, Version, HEADER_SLOTS};
use crate::io::{Backend, Stream};
use crate::routing::Route;

use super::body::{consume, read_into, write_all};
use super::ctx::{CoreCtx, RouterSettings};
use super::error::ProxyError;
use super::exchange;

/// What the exchange needs to know about the request once its head is gone
/// from the buffer.
#[derive(Debug, Clone, Copy)]
pub(super) struct RequestMeta {
    pub method: Method,
    pub version: Version,
    pub keep_alive: bool,
    pub upgrade: bool,
    /// Safe to send again on a fresh connection if a pooled one turns out dead.
    pub replay_safe: bool,
}

pub(super) struct Prepared {
    pub meta: RequestMeta,
    pub route: Route,
    pub body: BodyReader,
}

struct OpenConnection<'a> {
    active: &'a std::cell::Cell<usize>,
}

impl Drop for OpenConnection<'_> {
    fn drop(&mut self) {
        self.active.set(self.active.get() - 1);
    }
}

/// Serves one accepted client connection until it closes.
pub async fn serve_connection<B: Backend>(
    ctx: Rc<CoreCtx<B>>,
    settings: Rc<RouterSettings>,
    router: usize,
    client: B::Stream,
) {
    ctx.active.set(ctx.active.get() + 1);
    let _open = OpenConnection {
        active: &ctx.active,
    };
    let mut session = Session {
        ctx: &ctx,
        settings: &settings,
        router,
        client: &client,
        rbuf: Vec::new(),
    };
    let mut first = true;
    while session.next_request(first).await == Next::KeepAlive {
        first = false;
    }
    let rbuf = std::mem::take(&mut session.rbuf);
    ctx.give_buffer(rbuf);
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Next {
    KeepAlive,
    Close,
}

pub(super) struct Session<'a, B: Backend> {
    pub ctx: &'a CoreCtx<B>,
    pub settings: &'a RouterSettings,
    pub router: usize,
    pub client: &'a B::Stream,
    /// Client read buffer. Empty (and returned to the core) while idle.
    pub rbuf: Vec<u8>,
}

impl<B: Backend> Session<'_, B> {
    async fn next_request(&mut self, first: bool) -> Next {
        if self.rbuf.is_empty() && !self.wait_for_request(first).await {
            return Next::Close;
        }
        let mut sbuf = self.ctx.take_buffer();
        let prepared = match self.read_head(&mut sbuf).await {
            Ok(p) => p,
            Err(close) => {
                self.ctx.give_buffer(sbuf);
                return close;
            }
        };
        exchange::run(self, prepared, sbuf).await
    }

    /// Idle between requests: hold no read buffer, wake on data, EOF, the
    /// idle timeout, or the start of draining.
    async fn wait_for_request(&mut self, first: bool) -> bool {
        if self.rbuf.capacity() != 0 {
            let rbuf = std::mem::take(&mut self.rbuf);
            self.ctx.give_buffer(rbuf);
        }
        if self.ctx.shutdown.is_draining() && !first {
            return false;
        }
        let limit = if first {
            self.settings.header_read_timeout
        } else {
            self.settings.idle_timeout
        };
        let small = self.ctx.take_small();
        let wait = tokio::time::timeout(limit, self.client.wait_readable(small));
        let (res, small) = tokio::select! {
            r = wait => match r {
                Ok(r) => r,
                Err(_elapsed) => return false,
            },
            () = self.ctx.shutdown.draining(), if !first => return false,
        };
        let ready = matches!(res, Ok(true));
        if ready {
            self.rbuf = self.ctx.take_buffer();
            self.rbuf.extend_from_slice(&small);
        }
        self.ctx.give_small(small);
        ready
    }

    /// Reads until a complete head is parsed, then routes it and encodes the
    /// forwarded head (plus any body bytes already read) into `sbuf`.
    async fn read_head(&mut self, sbuf: &mut Vec<u8>) -> Result<Prepared, Next> {
        let deadline = Instant::now() + self.settings.header_read_timeout;
        let limits = self.settings.limits;
        loop {
            if !self.rbuf.is_empty() {
                match self.try_prepare(&limits, sbuf) {
                    Ok(Some(p)) => return Ok(p),
                    Ok(None) => {}
                    Err(e) => {
                        self.respond_error(&e).await;
                        return Err(Next::Close);
                    }
                }
            }
            let read = read_into(self.client, &mut self.rbuf, self.ctx.buffer_size());
            match tokio::time::timeout_at(deadline, read).await {
                Ok(Ok(0)) | Ok(Err(_)) => return Err(Next::Close),
                Ok(Ok(_)) => {}
                Err(_elapsed) => {
                    let mut out = Vec::new();
                    let message = format!(
                        "request head not received within {} ms",
                        self.settings.header_read_timeout.as_millis()
                    );
                    http1::encode_error_response(&mut out, 408, &message, true);
                    let _ = tokio::time::timeout(
                        Duration::from_secs(1),
                        write_all(self.client, &mut out),
                    )
                    .await;
                    return Err(Next::Close);
                }
            }
        }
    }

    fn try_prepare(
        &mut self,
        limits: &Limits,
        sbuf: &mut Vec<u8>,
    ) -> Result<Option<Prepared>, ProxyError> {
        let mut slots = [MaybeUninit::uninit(); HEADER_SLOTS];
        let Some(mut head) =
            http1::parse_request(&self.rbuf, &mut slots, limits).map_err(ProxyError::BadRequest)?
        else {
            return Ok(None);
        };
        if head.via_hops > self.settings.max_call_depth {
            return Err(ProxyError::CallDepthExceeded(self.settings.max_call_depth));
        }
        let route = self.ctx.routes.route(self.router, &head)?;
        if let (Some(max), BodyFraming::Length(n)) = (self.settings.max_request_body, head.framing)
        {
            if n > max {
                return Err(ProxyError::RequestTooLarge);
            }
        }
        // An upgrade carrying a body is forwarded as a plain request: the
        // tunnel would otherwise start in the middle of a streamed body.
        if head.framing != BodyFraming::Empty {
            head.upgrade = None;
        }
        let upgrade = head.upgrade.is_some();
        let replay_safe = head.method.is_idempotent()
            || head
                .headers
                .iter()
                .any(|h| h.name.eq_ignore_ascii_case("idempotency-key"));
        let meta = RequestMeta {
            method: head.method,
            version: head.version,
            keep_alive: head.keep_alive,
            upgrade,
            replay_safe,
        };
        sbuf.clear();
        let route_headers = route.context_headers();
        http1::encode_request_head(sbuf, &head, &route_headers);
        let head_len = head.head_len;
        let mut body = head.framing.reader();

        // Body bytes that arrived with the head go out with it, in one write.
        let progress = body
            .advance(&self.rbuf[head_len..], |_| {})
            .map_err(ProxyError::BadRequest)?;
        sbuf.extend_from_slice(&self.rbuf[head_len..head_len + progress.consumed]);
        consume(&mut self.rbuf, head_len + progress.consumed);
        Ok(Some(Prepared { meta, route, body }))
    }

    /// Answers an error corelink itself detected; the connection closes after
    /// (the request's body, if any, was not read, so the stream is out of sync).
    pub(super) async fn respond_error(&mut self, e: &ProxyError) {
        tracing::debug!(router = %self.settings.label, error = %e, side = ?e.side(), "request failed");
        let mut out = self.ctx.take_buffer();
        out.clear();
        http1::encode_error_response(&mut out, e.status(), &e.to_string(), true);
        let _ =
            tokio::time::timeout(Duration::from_secs(5), write_all(self.client, &mut out)).await;
        self.ctx.give_buffer(out);
    }
}
