// HTTPS keepalive: the same load as keepalive.js over TLS; SNI and Host name HOST, so the
// Ingress's own certificate is selected.
//
//   k6 run -e HOST=hello.example.com -e INGRESS_IP=192.0.2.10 loadtest/k6/https.js

import http from 'k6/http';
import { check } from 'k6';
import { common, host, path } from './lib.js';

export const options = {
  ...common(),
  scenarios: {
    https_keepalive: {
      executor: 'constant-vus',
      vus: Number(__ENV.VUS || 64),
      duration: __ENV.DURATION || '30s',
    },
  },
};

const target = `https://${host}${path}`;

export default function () {
  const res = http.get(target);
  check(res, {
    'status is 200': (r) => r.status === 200,
    'negotiated TLS': (r) => r.tls_version !== '' && r.tls_version !== undefined,
  });
}
