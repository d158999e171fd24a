-- Many Ingress hosts: every request names a random one of HOSTS hosts, h0.SUFFIX .. h(N-1).SUFFIX,
-- so the router's host lookup is exercised over the whole table rather than one hot entry.
--
--   HOSTS=10000 SUFFIX=bench.example.com wrk -t1 -c64 -d10s -s loadtest/wrk/hosts.lua http://INGRESS_IP/

dofile((os.getenv("PORTICO_WRK_DIR") or "loadtest/wrk") .. "/common.lua")

local n = tonumber(os.getenv("HOSTS") or "10000")
local suffix = os.getenv("SUFFIX") or "bench"
local path = os.getenv("URL_PATH") or "/"

-- Pre-formatted requests: formatting per request would make the load generator the bottleneck.
local pool = {}
local pool_size = math.min(n, 4096)

function init(args)
   math.randomseed(os.time())
   for i = 1, pool_size do
      local h = math.random(0, n - 1)
      pool[i] = wrk.format("GET", path, { ["Host"] = "h" .. h .. "." .. suffix })
   end
end

local i = 0
function request()
   i = i % pool_size + 1
   return pool[i]
end
