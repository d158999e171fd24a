// A ramping arrival rate: requests per second rise in steps, whatever the latency (an open
// model, unlike constant-vus). The run fails when p99 or the error rate crosses its threshold,
// which tells the rate the Ingress sustains within its latency budget.
//
//   k6 run -e HOST=hello.example.com -e INGRESS_IP=192.0.2.10 -e PEAK_RPS=40000 loadtest/k6/ramping.js

import http from 'k6/http';
import { check } from 'k6';
import { common, url } from './lib.js';

const peak = Number(__ENV.PEAK_RPS || 20000);

export const options = {
  ...common(),
  scenarios: {
    ramping: {
      executor: 'ramping-arrival-rate',
      startRate: Math.max(1, Math.floor(peak / 20)),
      timeUnit: '1s',
      preAllocatedVUs: Number(__ENV.VUS || 256),
      maxVUs: Number(__ENV.MAX_VUS || 1024),
      stages: [
        { target: Math.floor(peak / 4), duration: '20s' },
        { target: Math.floor(peak / 2), duration: '20s' },
        { target: peak, duration: '20s' },
        { target: peak, duration: '30s' },
        { target: 0, duration: '10s' },
      ],
    },
  },
  // Dropped iterations mean the load generator could not keep the rate: flag it.
  thresholds: { ...common().thresholds, dropped_iterations: ['count<1'] },
};

export default function () {
  const res = http.get(url);
  check(res, { 'status is 200': (r) => r.status === 200 });
}
