-- Cookie affinity (nginx.ingress.kubernetes.io/affinity: cookie): each wrk thread is one client
-- that keeps the first affinity cookie it is given and sends it back, like a browser. Counts the
-- responses that came from a different backend than the first one answered with the cookie (the
-- body names its backend, as hellok8s does); with -t1 and a working affinity it stays 0.
--
--   HOST=sticky.example.com COOKIE=route wrk -t1 -c16 -d10s -s loadtest/wrk/affinity.lua http://INGRESS_IP/

dofile((os.getenv("PORTICO_WRK_DIR") or "loadtest/wrk") .. "/common.lua")
local report_done = done

local cookie_name = os.getenv("COOKIE") or "route"
local threads = {}

function setup(thread)
   table.insert(threads, thread)
end

local cookie = nil
local first_backend = nil
moved = 0
answered = 0

function request()
   local headers = {}
   if cookie then
      headers["Cookie"] = cookie
   end
   return wrk.format(nil, nil, headers)
end

function response(status, headers, body)
   local set = headers["Set-Cookie"] or headers["set-cookie"]
   if set and not cookie then
      local v = set:match("^(" .. cookie_name .. "=[^;]*)")
      if v then
         cookie = v
      end
   end
   answered = answered + 1
   if cookie then
      if first_backend == nil then
         first_backend = body
      elseif body ~= first_backend then
         moved = moved + 1
      end
   end
end

function done(summary, latency, requests)
   local total_moved = 0
   for _, t in ipairs(threads) do
      total_moved = total_moved + (t:get("moved") or 0)
   end
   io.write(string.format("affinity: %d responses served by a different backend than the cookie's\n", total_moved))
   report_done(summary, latency, requests)
end
