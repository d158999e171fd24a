-- HTTP/1.1 keepalive, small body: the proxy's per-request cost with connections reused.
-- Also the HTTPS keepalive scenario: point it at an https:// URL.
--
--   HOST=hello.example.com wrk -t1 -c64 -d10s -s loadtest/wrk/keepalive.lua http://INGRESS_IP/
--   HOST=hello.example.com wrk -t1 -c64 -d10s -s loadtest/wrk/keepalive.lua https://INGRESS_IP/

dofile((os.getenv("PORTICO_WRK_DIR") or "loadtest/wrk") .. "/common.lua")

wrk.method = "GET"
wrk.path = os.getenv("URL_PATH") or wrk.path
