-- A new connection per request: accept, (TLS handshake,) parse, connect-or-reuse upstream, close.
--
--   HOST=hello.example.com wrk -t1 -c64 -d10s -s loadtest/wrk/close.lua http://INGRESS_IP/

dofile((os.getenv("PORTICO_WRK_DIR") or "loadtest/wrk") .. "/common.lua")

wrk.method = "GET"
wrk.path = os.getenv("URL_PATH") or wrk.path
wrk.headers["Connection"] = "close"
