"""Times a whole historical range query of the logging app (docs/perf.md): follows @nextLink,
retries 202 answers after 20 ms. Usage: python historical-range-timing.py PORT TO_SEQNO
[SANDBOX_COMMON_DIR] (default /tmp/sbx/sandbox_common)."""
import json, ssl, sys, time, http.client
C = sys.argv[3] if len(sys.argv) > 3 else "/tmp/sbx/sandbox_common"
ctx = ssl.create_default_context(cafile=f"{C}/service_cert.pem")
ctx.load_cert_chain(f"{C}/user0_cert.pem", f"{C}/user0_privk.pem")
port = int(sys.argv[1]); to = int(sys.argv[2])
conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx)
path = f"/app/log/public/historical/range?id=0&from_seqno=1&to_seqno={to}"
t0 = time.time(); entries = 0; pages = 0; retries = 0
while path:
    conn.request("GET", path); r = conn.getresponse(); body = r.read()
    if r.status == 202:
        retries += 1; time.sleep(0.02); continue
    assert r.status == 200, (r.status, body[:200])
    b = json.loads(body); entries += len(b["entries"]); pages += 1
    path = b.get("@nextLink")
print(json.dumps({"seconds": round(time.time() - t0, 2), "entries": entries, "pages": pages, "retries_202": retries}))
