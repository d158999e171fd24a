-- Larger response bodies through keepalive connections: copy cost rather than parse cost.
-- The origin must serve URL_PATH with a body of the wanted size (the runner uses /1k and /64k).
--
--   HOST=static.example.com URL_PATH=/64k wrk -t1 -c64 -d10s -s loadtest/wrk/body.lua http://INGRESS_IP/

dofile((os.getenv("PORTICO_WRK_DIR") or "loadtest/wrk") .. "/common.lua")

wrk.method = "GET"
wrk.path = os.getenv("URL_PATH") or "/1k"
