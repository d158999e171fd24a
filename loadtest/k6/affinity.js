// Cookie affinity (nginx.ingress.kubernetes.io/affinity: cookie): every virtual user is one
// browser with its own cookie jar. After the first response sets the affinity cookie, every
// response must come from the same backend (the body names it, as hellok8s does), so the
// `same backend` check must stay at 100%.
//
//   k6 run -e HOST=sticky.example.com -e INGRESS_IP=192.0.2.10 -e COOKIE=route loadtest/k6/affinity.js

import http from 'k6/http';
import { check } from 'k6';
import { common, url } from './lib.js';

const cookieName = __ENV.COOKIE || 'route';

export const options = {
  ...common(),
  scenarios: {
    affinity: {
      executor: 'constant-vus',
      vus: Number(__ENV.VUS || 16),
      duration: __ENV.DURATION || '30s',
    },
  },
};

// Per virtual user (each VU has its own JavaScript context): the backend the cookie pinned.
let pinned = null;

export default function () {
  const res = http.get(url);
  const hasCookie = http.cookieJar().cookiesForURL(url)[cookieName] !== undefined;
  check(res, { 'status is 200': (r) => r.status === 200 });
  if (!hasCookie) {
    check(res, { 'affinity cookie set': () => false });
    return;
  }
  if (pinned === null) {
    pinned = res.body;
    return;
  }
  check(res, { 'same backend': (r) => r.body === pinned });
}
