-- Shared by every scenario: prints one machine-readable line at the end of a run, beside wrk's
-- own human-readable summary. Latencies are in microseconds.
--
--   PORTICO_WRK {"requests":...,"duration_us":...,"p50_us":...,"p99_us":...,"connect":...}

function done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      'PORTICO_WRK {"requests":%d,"duration_us":%d,"bytes":%d,' ..
      '"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d,' ..
      '"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d}\n',
      summary.requests, summary.duration, summary.bytes,
      e.connect, e.read, e.write, e.status, e.timeout,
      latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
