#!/usr/bin/env python3
"""Writes the committed seed corpus: fuzz/corpus/<target>/seed-<name>.

Run from anywhere: `python3 fuzz/seeds.py`. Existing seed-* files of each
target are replaced; other (fuzzer-generated, git-ignored) files are left alone.

`chunked`, `rechunk` and `request_framing` inputs start with the split header read by
`corelink_fuzz::split_input`: one byte n (cut count), then n little-endian u16
cut offsets into the payload that follows.
"""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def split(payload: bytes, cuts=()) -> bytes:
    return bytes([len(cuts)]) + b"".join(struct.pack("<H", c) for c in cuts) + payload


BROWSER_GET = (
    b"GET /products/42?ref=home&lang=en HTTP/1.1\r\n"
    b"Host: serviceB\r\n"
    b"User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n"
    b"Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n"
    b"Accept-Language: en-US,en;q=0.5\r\n"
    b"Accept-Encoding: gzip, deflate, br\r\n"
    b"Connection: keep-alive\r\n"
    b"Cookie: session=abc123; theme=dark\r\n"
    b"Upgrade-Insecure-Requests: 1\r\n"
    b"\r\n"
)

REQUESTS = {
    "browser-get": BROWSER_GET,
    "wrk-get": b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n",
    "post-content-length": b"POST /submit HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\nContent-Type: text/plain\r\n\r\nhello world",
    "post-chunked": b"POST /upload HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n",
    "smuggle-cl-te": b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nG",
    "smuggle-te-cl": b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n8\r\nSMUGGLED\r\n0\r\n\r\n",
    "smuggle-te-obfuscated": b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-encoding: x\r\nTransfer-Encoding : chunked\r\n\r\n",
    "smuggle-dup-cl": b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
    "obs-fold": b"GET / HTTP/1.1\r\nHost: a\r\nX-Folded: one\r\n two\r\n\r\n",
    "bare-lf": b"GET / HTTP/1.1\nHost: a\n\n",
    "bare-cr": b"GET / HTTP/1.1\r\nHost: a\rX: y\r\n\r\n",
    "long-target": b"GET /" + b"a" * 4070 + b" HTTP/1.1\r\nHost: a\r\n\r\n",
    "connect": b"CONNECT serviceB:443 HTTP/1.1\r\nHost: serviceB:443\r\n\r\n",
    "absolute-form": b"GET http://serviceB:8080/x?y HTTP/1.1\r\nHost: serviceB:8080\r\n\r\n",
    "websocket-upgrade": b"GET /chat HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    "expect-continue": b"PUT /big HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\nbody",
    "hop-by-hop": b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close, X-Secret\r\nX-Secret: 1\r\nKeep-Alive: 5\r\nTE: trailers\r\nVia: 1.1 a, 1.0 b\r\nVia: 1.1 c\r\n\r\n",
    "te-gzip-chunked": b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
    "leading-crlf": b"\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
    "pipelined": b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\nPOST /2 HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabcGET /3 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
}

RESPONSES = {
    "ok-content-length": b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello",
    "ok-chunked": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    "gzip-chunked": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\nVary: Accept-Encoding\r\n\r\n",
    "gzip-close-delimited": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
    "close-delimited": b"HTTP/1.1 200 OK\r\nServer: nginx\r\n\r\nuntil close",
    "no-content": b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n",
    "not-modified": b"HTTP/1.1 304 Not Modified\r\nContent-Length: 99\r\nETag: \"x\"\r\n\r\n",
    "continue": b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
    "switching": b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n",
    "http10-keepalive": b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nhi",
    "cl-te": b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "dup-cl": b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
    "bare-lf": b"HTTP/1.1 200 OK\nContent-Length: 0\n\n",
    "connect-established": b"HTTP/1.1 200 Connection Established\r\n\r\n",
    "error-l5d": b"HTTP/1.1 502 Bad Gateway\r\nl5d-err: No+hosts+are+available\r\nContent-Type: text/plain\r\nContent-Length: 22\r\nVia: 1.1 linkerd\r\nConnection: close, X-Hop\r\nX-Hop: 1\r\n\r\n",
    "obs-fold": b"HTTP/1.1 200 OK\r\nX-A: one\r\n two\r\nContent-Length: 0\r\n\r\n",
}

CHUNKED = {
    "simple": split(b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"),
    "simple-split": split(b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", (1, 3, 9, 12, 20)),
    "extensions": split(b"5;a=b;c=\"d\\\"e\"\r\nhello\r\n6 ; name\r\n world\r\n0\r\n\r\n", (4, 17)),
    "trailers": split(b"3\r\nabc\r\n0\r\nX-Checksum: 1234\r\nX-Other: v\r\n\r\n", (9,)),
    "hex-zeros": split(b"000A\r\n0123456789\r\n00\r\n\r\n"),
    "then-request": split(b"2\r\nhi\r\n0\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", (10, 11)),
    "max-size": split(b"ffffffffffffffff\r\nabc"),
    "overflow": split(b"10000000000000000\r\n"),
    "bare-lf": split(b"5\nhello\r\n0\r\n\r\n"),
    "data-overrun": split(b"5\r\nhelloXX0\r\n\r\n"),
    "leading-space": split(b" 5\r\nhello\r\n0\r\n\r\n"),
    "unterminated-quote": split(b"5;a=\"x\r\nhello\r\n0\r\n\r\n"),
    "many-tiny": split(b"1\r\na\r\n" * 24 + b"0\r\n\r\n", (3, 50, 100)),
}

RECHUNK = {
    "bws-extension": split(b"5 ;a=b\r\nhello\r\n0\r\n\r\n"),
    "extensions-split": split(b"5\t;a=\"x;y\"\r\nhello\r\n0;last\r\n\r\n", (3, 12)),
    "hex-zeros": split(b"000A\r\n0123456789\r\n0000\r\n\r\n", (8,)),
    "forbidden-trailers": split(
        b"2\r\nok\r\n0\r\nContent-Length: 5\r\nX-Checksum:  abc \r\nHost: evil\r\n"
        b"Transfer-Encoding: chunked\r\nSet-Cookie: a=b\r\nl5d-dtab: /svc=>/x\r\nX-Empty:\r\n\r\n",
        (12, 30, 31),
    ),
    "trailer-split-everywhere": split(b"1\r\na\r\n0\r\nA:1\r\nB:\t2\t\r\n\r\nGET / HTTP/1.1\r\n", (9, 10, 11, 12, 13, 14, 15, 16)),
    "many-tiny": split(b"1\r\na\r\n" * 24 + b"0\r\n\r\n", (3, 50, 100)),
    "bad-trailer": split(b"0\r\nBad Name: x\r\n\r\n"),
}

FRAMING = {
    "pipelined": split(REQUESTS["pipelined"], (5, 30, 60)),
    "pipelined-chunked": split(REQUESTS["post-chunked"] + REQUESTS["wrk-get"], (70, 71)),
    "smuggle-cl-te": split(REQUESTS["smuggle-cl-te"] + b"ET / HTTP/1.1\r\nHost: a\r\n\r\n"),
    "smuggle-te-cl": split(REQUESTS["smuggle-te-cl"], (40,)),
    "length-then-get": split(REQUESTS["post-content-length"] + REQUESTS["wrk-get"], (60, 70)),
    "http10": split(b"GET /old HTTP/1.0\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nhi" + REQUESTS["wrk-get"]),
    "line-too-long": split(b"GET /" + b"a" * 4100 + b" HTTP/1.1\r\nHost: a\r\n\r\n", (2000, 4097)),
    "browser": split(BROWSER_GET + BROWSER_GET, (100, 301)),
    "expect": split(REQUESTS["expect-continue"] + REQUESTS["connect"], (62,)),
    "bare-lf": split(REQUESTS["wrk-get"] + REQUESTS["bare-lf"], (36,)),
    "truncated-body": split(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nonly-half", (60,)),
}

DTABS = {
    "fs": "/svc => /#/io.l5d.fs",
    "scenario": "/svc => /#/io.l5d.fs; /svc/serviceB => /$/inet/127.0.0.1/8080",
    "incoming": "/svc => /$/inet/127.1/8888 ;",
    "port-transform": "/ph => /$/io.buoyant.rinet ; /svc => /ph/80 ; /svc => /$/io.buoyant.porthostPfx/ph ;",
    "k8s": "/srv => /#/io.l5d.k8s/default/http ; /host => /srv ; /svc => /host ; /host/world => /srv/world-v2 ;",
    "weighted": "/svc/foo => 1 * /srv/foo-v1 & 9 * /srv/foo-v2 ; /srv => /#/io.l5d.fs",
    "wildcard": "/http/1.1/*/* => /svc ; /svc => /#/io.l5d.fs",
    "failover": "/svc => /#/io.l5d.fs | /$/inet/127.1/9990 | !",
    "markers": "/a => (/b | /c) & 0.5*/d ; /x => ~ ; /y => $ ; / => !",
    "escapes": "/\\x20 => $ ; /#/io.l5d.fs => /$/inet/127.1/9000/rest",
    "namerd": "/ns/prod/router => /$/inet/localhost/4141;/svc=>/ns/prod/router",
    "nested": "/s => ((/a & 0.25*/b) | (/c | ~)) & 3*/d",
}

PATHS = {
    "root": "/",
    "svc": "/svc/serviceB",
    "fs": "/#/io.l5d.fs/serviceB/residual",
    "inet": "/$/inet/127.0.0.1/8080",
    "hostport": "/ph/127.0.0.1:8080/rest",
    "hostport-trailing": "/ph/h:http::/x",
    "hostport-empty-host": "/ph/:8080",
    "domain": "/pfx/foo.buoyant.io/a",
    "subdomain": "/service.consul/pfx/web.service.consul:8500/r",
    "escaped": "/a\\x2fb/\\x00\\xff",
    "ws": "  /a/b  ",
    "tree-precedence": "/foo & /bar | /baz | $",
    "tree-weights": " 0.3 * /a &.7*/b ",
    "tree-markers": "(/a | /b) & ~ | !",
    "tree-parens": "((/a)) | ((/b & /c))",
    "tree-default-weight": "1*/a & 2.50*/b & 0.333*/c",
}


def write(target, seeds):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    for f in os.listdir(d):
        if f.startswith("seed-"):
            os.remove(os.path.join(d, f))
    for name, data in seeds.items():
        if isinstance(data, str):
            data = data.encode()
        with open(os.path.join(d, "seed-" + name), "wb") as f:
            f.write(data)


write("request_head", REQUESTS)
write("response_head", RESPONSES)
write("chunked", CHUNKED)
write("rechunk", RECHUNK)
write("request_framing", FRAMING)
write("dtab", DTABS)
write("path", PATHS)
