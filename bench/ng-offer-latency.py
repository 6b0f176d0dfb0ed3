#!/usr/bin/env python3
"""NG offer latency at a fixed rate (bench/README.md, NG answer latency).

Usage: bench/ng-offer-latency.py HOST PORT RATE COUNT

Sends COUNT `offer`s (each a new call, PCMU + telephone-event, `supports: load limit`) at RATE
per second from one connected UDP socket, as a Kamailio worker does, times each from its send
to its answer (matched by cookie), prints p50/p99/max, then deletes the calls (`fast`).
Python's standard library only; the daemon under test must allow 127.0.0.1 (the default).
"""
import socket
import sys
import threading
import time


def bencode(v):
    if isinstance(v, int):
        return b"i%de" % v
    if isinstance(v, str):
        v = v.encode()
    if isinstance(v, bytes):
        return b"%d:%s" % (len(v), v)
    if isinstance(v, list):
        return b"l" + b"".join(bencode(x) for x in v) + b"e"
    return b"d" + b"".join(bencode(k) + bencode(x) for k, x in v.items()) + b"e"


host, port, rate, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
SDP = ("v=0\r\no=u 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
       "m=audio 6000 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n"
       "a=rtpmap:101 telephone-event/8000\r\n")
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.connect((host, port))
sock.settimeout(5)
sent, rtt, not_ok = {}, [], []


def receive():
    while len(rtt) < count:
        try:
            datagram = sock.recv(65535)
        except socket.timeout:
            return
        cookie = datagram.split(b" ", 1)[0]
        at = sent.pop(cookie, None)
        if at is not None:
            rtt.append(time.perf_counter() - at)
            if b"6:result2:ok" not in datagram:
                not_ok.append(cookie)


receiver = threading.Thread(target=receive)
receiver.start()
start = time.perf_counter()
for i in range(count):
    due = start + i / rate
    while time.perf_counter() < due:
        time.sleep(max(0.0, due - time.perf_counter()))
    body = bencode({"supports": ["load limit"], "sdp": SDP, "call-id": "lat-%d" % i,
                    "from-tag": "a%d" % i, "command": "offer"})
    cookie = b"lat_%d" % i
    sent[cookie] = time.perf_counter()
    sock.send(cookie + b" " + body)
receiver.join()
for i in range(count):
    sock.send(b"del_%d " % i + bencode({"call-id": "lat-%d" % i, "from-tag": "a%d" % i,
                                        "flags": ["fast"], "command": "delete"}))
    sock.recv(65535)
rtt.sort()
if not rtt:
    sys.exit("no answer")


def q(p):
    return rtt[min(len(rtt) - 1, int(p * len(rtt)))] * 1000


print("offers %d at %d/s: answered %d (not ok %d), p50 %.2f ms, p99 %.2f ms, max %.2f ms"
      % (count, rate, len(rtt), len(not_ok), q(0.5), q(0.99), rtt[-1] * 1000))
