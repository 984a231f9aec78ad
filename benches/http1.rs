//! HTTP/1.1 codec micro-benchmarks: head parsing and encoding, chunked
//! decoding. Run with `cargo bench --bench http1`.
//!
//! Every benchmark reports time per operation and bytes/s over its input.

use std::hint::black_box;
use std::mem::MaybeUninit;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion, Throughput};
use http1::{encode_request_head, parse_request, parse_response, ChunkedDecoder, Limits, Method, HEADER_SLOTS};

/// What a browser sends: ~300 bytes, 8 header fields.
const BROWSER_GET: &[u8] = b"GET /products/42?ref=home&lang=en HTTP/1.1\r\n\
Host: serviceB\r\n\
User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n\
Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n\
Accept-Language: en-US,en;q=0.5\r\n\
Accept-Encoding: gzip, deflate, br\r\n\
Connection: keep-alive\r\n\
Cookie: session=abc123; theme=dark\r\n\
Upgrade-Insecure-Requests: 1\r\n\
\r\n";

/// What `wrk` sends by default.
const WRK_GET: &[u8] = b"GET / HTTP/1.1\r\nHost: localhost:4141\r\n\r\n";

/// An nginx static-file response head.
const NGINX_RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\n\
Server: nginx/1.22.1\r\n\
Date: Sun, 23 Nov 2025 20:00:00 GMT\r\n\
Content-Type: text/html\r\n\
Content-Length: 615\r\n\
Last-Modified: Tue, 13 Jun 2023 15:08:10 GMT\r\n\
Connection: keep-alive\r\n\
ETag: \"6488865a-267\"\r\n\
Accept-Ranges: bytes\r\n\
\r\n";

fn quick<'a>(c: &'a mut Criterion, name: &str) -> BenchmarkGroup<'a, criterion::measurement::WallTime> {
    let mut g = c.benchmark_group(name);
    g.warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(2));
    g
}

fn parse_heads(c: &mut Criterion) {
    let limits = Limits::default();
    let mut g = quick(c, "parse_request");
    for (name, input) in [("browser_get", BROWSER_GET), ("wrk_get", WRK_GET)] {
        g.throughput(Throughput::Bytes(input.len() as u64));
        g.bench_function(name, |b| {
            b.iter(|| {
                let mut slots = [MaybeUninit::uninit(); HEADER_SLOTS];
                let head = parse_request(black_box(input), &mut slots, &limits).expect("valid").expect("complete");
                black_box((head.head_len, head.framing, head.host));
            })
        });
    }
    // Baseline: httparse's tokenising alone, without corelink's checks.
    for (name, input) in [("httparse_only/browser_get", BROWSER_GET), ("httparse_only/wrk_get", WRK_GET)] {
        g.throughput(Throughput::Bytes(input.len() as u64));
        g.bench_function(name, |b| {
            b.iter(|| {
                let mut headers = [httparse::EMPTY_HEADER; 32];
                let mut req = httparse::Request::new(&mut headers);
                black_box(req.parse(black_box(input)).expect("valid"));
            })
        });
    }
    g.finish();

    let mut g = quick(c, "parse_response");
    g.throughput(Throughput::Bytes(NGINX_RESPONSE.len() as u64));
    g.bench_function("nginx_200", |b| {
        b.iter(|| {
            let mut slots = [MaybeUninit::uninit(); HEADER_SLOTS];
            let head = parse_response(black_box(NGINX_RESPONSE), &mut slots, Method::Get, false, &limits)
                .expect("valid")
                .expect("complete");
            black_box((head.head_len, head.framing, head.keep_alive));
        })
    });
    g.finish();
}

fn encode_heads(c: &mut Criterion) {
    let limits = Limits::default();
    let mut g = quick(c, "encode_request_head");
    for (name, input) in [("browser_get", BROWSER_GET), ("wrk_get", WRK_GET)] {
        let mut slots = [MaybeUninit::uninit(); HEADER_SLOTS];
        let head = parse_request(input, &mut slots, &limits).expect("valid").expect("complete");
        let context: [(&str, &[u8]); 2] =
            [("l5d-dst-service", b"/svc/serviceB"), ("l5d-dst-client", b"/$/inet/127.0.0.1/8080")];
        // The output buffer is reused, as on a keep-alive connection.
        let mut out = Vec::with_capacity(1024);
        g.throughput(Throughput::Bytes(input.len() as u64));
        g.bench_function(name, |b| {
            b.iter(|| {
                out.clear();
                encode_request_head(&mut out, black_box(&head), &context);
                black_box(out.len());
            })
        });
    }
    g.finish();
}

/// A chunked body of `total` payload bytes in chunks of `chunk` bytes.
fn chunked_body(total: usize, chunk: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(total + total / chunk * 12 + 16);
    let mut left = total;
    while left > 0 {
        let n = left.min(chunk);
        out.extend_from_slice(format!("{n:x}\r\n").as_bytes());
        out.extend(std::iter::repeat_n(b'x', n));
        out.extend_from_slice(b"\r\n");
        left -= n;
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

/// Decodes `body` handed over in `read`-byte pieces. With `out`, the payload
/// is copied out (as when de-chunking for an HTTP/1.0 client); without, the
/// decoder only finds the framing and the payload slices are not touched (as
/// when a chunked body is forwarded as is).
fn decode_all(body: &[u8], read: usize, mut out: Option<&mut Vec<u8>>) -> usize {
    let mut d = ChunkedDecoder::new();
    let mut payload = 0;
    if let Some(out) = out.as_deref_mut() {
        out.clear();
    }
    for part in body.chunks(read) {
        let p = d
            .decode(part, |data| {
                payload += black_box(data).len();
                if let Some(out) = out.as_deref_mut() {
                    out.extend_from_slice(data);
                }
            })
            .expect("valid chunked body");
        if p.done {
            break;
        }
    }
    payload
}

fn chunked(c: &mut Criterion) {
    let mut g = quick(c, "chunked_decode");
    g.sample_size(30);
    let one_mib = chunked_body(1 << 20, 8 << 10);
    let tiny = chunked_body(64 << 10, 4);
    let mut out = Vec::with_capacity(1 << 20);
    let cases: [(&str, &[u8], usize, bool); 4] = [
        // 1 MiB in 8 KiB chunks, in one buffer: framing cost only.
        ("1MiB_8KiB_chunks", &one_mib, usize::MAX, false),
        // The same handed over in 16 KiB reads (state carried across calls).
        ("1MiB_8KiB_chunks_16KiB_reads", &one_mib, 16 << 10, false),
        // The same with the payload copied out (de-chunking).
        ("1MiB_8KiB_chunks_copy_out", &one_mib, usize::MAX, true),
        // Many tiny chunks: 64 KiB of payload in 4-byte chunks (16384 chunks).
        ("64KiB_4B_chunks", &tiny, usize::MAX, false),
    ];
    for (name, body, read, copy) in cases {
        assert!(decode_all(body, read, None) > 0);
        g.throughput(Throughput::Bytes(body.len() as u64));
        g.bench_function(name, |b| {
            b.iter(|| {
                let sink = if copy { Some(&mut out) } else { None };
                black_box(decode_all(black_box(body), read, sink))
            })
        });
    }
    g.finish();
}

criterion_group!(benches, parse_heads, encode_heads, chunked);
criterion_main!(benches);
