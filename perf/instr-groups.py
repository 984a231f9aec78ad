#!/usr/bin/env python3
"""Where a proxied request's instructions go, by what the code does.

    perf/instr-groups.py SMALL LARGE REQUESTS [--functions K]

SMALL and LARGE are callgrind output files of two runs of the same binary
that differ by REQUESTS requests (perf/instr-groups.sh makes them). Every
cost is the difference LARGE - SMALL over REQUESTS, so start-up and shutdown
cancel out. Each function's exclusive (self) cost goes to one group:

 - by the function's name (parsers, allocator, libc, tokio, ...);
 - for the big async state machines (conn.rs, exchange.rs), by the source
   file of the inlined code (table/ -> routing, tokio -> runtime, ...);
 - for code both sides of the proxy share (the Stream trait, read_into,
   tokio readiness, the io_uring operation path, memchr, httparse), split
   among its callers in proportion to their inclusive cost of the call,
   recursively up to a caller with a side (gprof's assumption).

--functions K lists each group's top K functions.
"""
import collections
import os
import re
import sys

GROUPS = [
    ('client_read', 'reading the client request (I/O trait, readiness / io_uring receive)'),
    ('parse_req', 'parsing the request head (crates/http1, httparse, memchr)'),
    ('routing', 'routing (src/table, naming, src/balance pick)'),
    ('encode', 'encoding the upstream head (+ l5d-reqid)'),
    ('pool', 'upstream pool take/give'),
    ('exchange', 'exchange state machine (exchange.rs, rules.rs, body.rs)'),
    ('up_write', 'writing the head upstream (I/O)'),
    ('parse_resp', 'parsing the response head (crates/http1, httparse, memchr)'),
    ('encode_resp', 're-encoding the response head'),
    ('resp_io', 'reading the response, writing it to the client (I/O)'),
    ('conn', 'connection loop (conn.rs, buffers)'),
    ('metrics', 'metrics and latency recording (src/telemetry)'),
    ('clock', 'clock reads (Instant::now, durations)'),
    ('tokio', 'tokio runtime (scheduler, LocalSet, timers, wakers)'),
    ('driver', 'I/O driver, neither side (tokio epoll dispatch, io_uring reap)'),
    ('alloc', 'allocator (mimalloc)'),
    ('memcpy', 'memcpy/memcmp (libc)'),
    ('syscall', 'syscall wrappers (libc)'),
    ('other', 'other'),
]

# (regex on the function name, group of its own cost, context its callees
# inherit). 'byfile:G' = by inlined source file, G when the file says
# nothing; 'inherit' = from the callers.
RULES = [
    (r'^(__memcpy|__memmove|__memset|__memcmp|__mempcpy|memcpy|memmove|memset|memcmp)', 'memcpy', None),
    (r'^(recv|send|epoll_wait|syscall|clock_gettime|__pthread_(enable|disable)_asynccancel|__errno_location'
     r'|writev|readv|read|write|__GI_|io_uring::)', 'syscall', None),
    (r'^(mi_|_mi_|__rust_alloc|__rust_dealloc|__rdl_|__rust_realloc)', 'alloc', None),
    (r'Timespec>::(now|sub_timespec)|std::time::Instant>::elapsed|Instant as core::ops::arith', 'clock', None),
    (r'corelink_http1::request::|Request::parse_with_config|match_uri_vectored', 'parse_req', 'parse_req'),
    (r'corelink_http1::response::|Response::parse_with_config|httparse::parse_(reason|code)', 'parse_resp', 'parse_resp'),
    (r'encode_request_head', 'encode', 'encode'),
    (r'encode_response_head', 'encode_resp', 'encode_resp'),
    (r'^(httparse::|memchr::|corelink_http1::|core::str::converts::from_utf8'
     r'|<core::slice::iter::Iter<T> as core::iter::traits::iterator::Iterator>::any)', 'inherit', 'inherit'),
    (r'^corelink::telemetry::|Session<B>::finish', 'metrics', 'metrics'),
    (r'^corelink::table::|^corelink::balance::|^corelink_naming::|arc_swap::|sip::Hasher'
     r'|drop_in_place<corelink::table', 'routing', 'routing'),
    (r'proxy::exchange::acquire|proxy::upstream::|corelink::pool::|core::hash::BuildHasher::hash_one',
     'byfile:pool', 'pool'),
    (r'proxy::exchange::(relay_response|stream_response_body)', 'byfile:exchange', 'resp_io'),
    (r'proxy::exchange::', 'byfile:exchange', 'up_write'),
    (r'proxy::conn::|drop_in_place<tokio::time::timeout::Timeout<corelink::proxy::body::read_into',
     'byfile:conn', 'client_read'),
    (r'proxy::buffers::', 'conn', 'conn'),
    (r'proxy::timed::|proxy::watchdog::|proxy::body::|corelink::io::(epoll::EpollStream|tls::|uring::UringStream)'
     r'|drop_in_place<<?corelink::io::|TcpStream::try_(read|write)|Registration::(poll_ready|readiness|try_io)'
     r'|scheduled_io::Readiness|std::io::error::Error>::kind'
     r'|io::uring::driver::(poll|start|give_back)$|io::uring::driver::Driver::push', 'inherit', 'inherit'),
    (r'tokio::runtime::io::|corelink::io::uring::', 'driver', 'driver'),
    (r'tokio::|LocalSet|current_thread|std::sys::backtrace|io::Backend>::run'
     r'|core::ops::function::FnOnce::call_once', 'tokio', 'tokio'),
]
RULES = [(re.compile(rx), own, ctx) for rx, own, ctx in RULES]


def rule(fn):
    for rx, own, ctx in RULES:
        if rx.search(fn):
            return own, ctx
    return 'other', 'other'


def file_group(f, default, hex_lines):
    if '/src/table/' in f or '/src/balance/' in f or '/crates/naming/' in f or 'arc-swap' in f:
        return 'routing'
    if '/src/telemetry/' in f:
        return 'metrics'
    if '/tokio-1' in f:
        return 'tokio'
    if '/src/proxy/upstream.rs' in f or '/src/pool/' in f:
        return 'pool'
    if '/src/proxy/buffers.rs' in f:
        return 'conn'
    if re.search(r'/src/proxy/(exchange|rules|request|error)\.rs$', f):
        return 'exchange'
    if '/crates/http1/src/request.rs' in f:
        return 'parse_req'
    if '/crates/http1/src/response.rs' in f:
        return 'parse_resp'
    if '/src/io/' in f or re.search(r'/src/proxy/(body|timed|watchdog)\.rs$', f):
        return 'SIDE'
    if f.endswith('/src/proxy/conn.rs'):
        return 'conn'
    return default


def parse(path):
    """Exclusive cost per (function, file, line); inclusive cost and count per call edge."""
    names = {'fl': {}, 'fn': {}}

    def name(kind, s):
        m = re.match(r'\((\d+)\)(?: (.*))?$', s)
        if not m:
            return s
        if m.group(2) is not None:
            names[kind][m.group(1)] = m.group(2)
        return names[kind][m.group(1)]

    excl = collections.Counter()
    edges = collections.Counter()
    calls = collections.Counter()
    total = 0
    fl = fi = fn = cfn = None
    pos = 0
    call = None
    with open(path, errors='replace') as f:
        for line in f:
            c = line[:1]
            if c.isdigit() or c in '+-*':
                parts = line.split()
                p = parts[0]
                if p[0] == '+':
                    pos += int(p[1:])
                elif p[0] == '-':
                    pos -= int(p[1:])
                elif p[0] != '*':
                    pos = int(p)
                cost = int(parts[1]) if len(parts) > 1 else 0
                if call is not None:
                    edges[(fn, call[0])] += cost
                    calls[(fn, call[0])] += call[1]
                    call = None
                else:
                    excl[(fn, fi or fl, pos)] += cost
                continue
            if line.startswith(('summary:', 'totals:')):
                total = max(total, int(line.split()[1]))
                continue
            if '=' not in line:
                continue
            k, v = line.rstrip('\n').split('=', 1)
            if k == 'fl':
                fl, fi = name('fl', v), None
            elif k in ('fi', 'fe'):
                fi = name('fl', v)
            elif k == 'fn':
                fn = name('fn', v)
            elif k in ('cfi', 'cfl'):
                name('fl', v)
            elif k == 'cfn':
                cfn = name('fn', v)
            elif k == 'calls':
                call = (cfn, int(v.split()[0]))
    return excl, edges, calls, total


def hex_id_lines(repo):
    """Lines of conn.rs's hex_id (the l5d-reqid), inlined into next_request."""
    try:
        src = open(os.path.join(repo, 'src/proxy/conn.rs')).read().split('\n')
    except OSError:
        return range(0)
    for i, line in enumerate(src):
        if line.startswith('fn hex_id('):
            end = next(j for j in range(i, len(src)) if src[j] == '}')
            return range(i + 1, end + 2)
    return range(0)


def attribute(small, large, n, repo):
    (e1, g1, c1, t1), (e2, g2, c2, t2) = parse(small), parse(large)
    excl = {k: (e2.get(k, 0) - e1.get(k, 0)) / n for k in set(e1) | set(e2)}
    edges = {k: (g2.get(k, 0) - g1.get(k, 0)) / n for k in set(g1) | set(g2)}
    calls = {k: (c2.get(k, 0) - c1.get(k, 0)) / n for k in set(c1) | set(c2)}
    callers = collections.defaultdict(list)
    for (a, b), w in edges.items():
        if a != b and w > 0:
            callers[b].append((a, w))
    memo = {}

    def context(fn, depth=0):
        if fn in memo:
            return memo[fn]
        _, ctx = rule(fn)
        if ctx not in (None, 'inherit'):
            r = {ctx: 1.0}
        elif depth > 40:
            r = {'other': 1.0}
        else:
            memo[fn] = {'other': 1.0}  # a cycle
            acc, tot = collections.Counter(), 0.0
            for a, w in callers[fn]:
                for g, p in context(a, depth + 1).items():
                    acc[g] += w * p
                tot += w
            r = {g: v / tot for g, v in acc.items()} if tot else {'other': 1.0}
        memo[fn] = r
        return r

    hex_lines = hex_id_lines(repo)
    groups = collections.Counter()
    by_fn = collections.defaultdict(collections.Counter)
    for (fn, f, line), v in excl.items():
        own, ctx = rule(fn)
        if own.startswith('byfile:'):
            g = file_group(f, own.split(':')[1], hex_lines)
            if f.endswith('/src/proxy/conn.rs') and line in hex_lines:
                g = 'encode'
            parts = context(fn) if g == 'SIDE' else {g: 1.0}
        elif own == 'inherit':
            parts = context(fn)
        else:
            parts = {own: 1.0}
        for g, p in parts.items():
            groups[g] += v * p
            by_fn[g][fn] += v * p
    return groups, by_fn, (t2 - t1) / n, calls


def main():
    args = sys.argv[1:]
    top = 0
    if '--functions' in args:
        i = args.index('--functions')
        top = int(args[i + 1])
        del args[i:i + 2]
    small, large, n = args[0], args[1], int(args[2])
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    groups, by_fn, total, _ = attribute(small, large, n, repo)
    print(f'{total:8.0f}  instructions per request')
    for key, desc in GROUPS:
        print(f'{groups[key]:8.0f}  {100 * groups[key] / total:5.1f} %  {desc}')
        for fn, v in by_fn[key].most_common(top):
            if abs(v) >= 1:
                print(f'            {v:7.0f}  {fn[:140]}')


if __name__ == '__main__':
    main()
