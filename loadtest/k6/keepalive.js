// HTTP/1.1 keepalive, small body: constant virtual users reusing their connections.
//
//   k6 run -e HOST=hello.example.com -e INGRESS_IP=192.0.2.10 loadtest/k6/keepalive.js
//   k6 run -e HOST=hello.example.com -e INGRESS_IP=192.0.2.10 -e VUS=256 loadtest/k6/keepalive.js

import http from 'k6/http';
import { check } from 'k6';
import { common, url } from './lib.js';

export const options = {
  ...common(),
  scenarios: {
    keepalive: {
      executor: 'constant-vus',
      vus: Number(__ENV.VUS || 64),
      duration: __ENV.DURATION || '30s',
    },
  },
};

export default function () {
  const res = http.get(url);
  check(res, { 'status is 200': (r) => r.status === 200 });
}
