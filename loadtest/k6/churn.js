// Load while you edit Ingresses: run this, then apply and revert an Ingress change in a loop,
// e.g. `while sleep 0.1; do kubectl annotate ingress hello --overwrite x/gen=$RANDOM; done`.
// Any failed request fails the run (MAX_ERRORS defaults to 0).
//
//   k6 run -e HOST=hello.example.com -e INGRESS_IP=192.0.2.10 -e DURATION=60s loadtest/k6/churn.js

import http from 'k6/http';
import { check } from 'k6';
import { common, url } from './lib.js';

export const options = {
  ...common(),
  scenarios: {
    churn: {
      executor: 'constant-vus',
      vus: Number(__ENV.VUS || 64),
      duration: __ENV.DURATION || '60s',
    },
  },
};

export default function () {
  const res = http.get(url);
  check(res, { 'status is 200': (r) => r.status === 200 });
}
