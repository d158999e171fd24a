-- Loaded by the scenario scripts: where report.lua lives, and the Host header to send.
--
--   PORTICO_WRK_DIR  directory of these scripts (default: loadtest/wrk, run from the repo root)
--   HOST             Host header (default: the URL's authority). Route by name without DNS.

local dir = os.getenv("PORTICO_WRK_DIR") or "loadtest/wrk"
dofile(dir .. "/report.lua")

local host = os.getenv("HOST")
if host and host ~= "" then
   wrk.headers["Host"] = host
end
