// Shared settings of Portico's k6 scenarios, all from the environment:
//
//   HOST        the Ingress host to request (required), e.g. hello.example.com
//   INGRESS_IP  the Ingress address; requests to HOST go there without DNS (k6 `hosts`), so
//               TLS SNI and the Host header both carry HOST, as a browser's would
//   SCHEME      http (default) or https
//   URL_PATH    path to request (default /)
//   P99_MS      p99 latency threshold in milliseconds (default 50)
//   MAX_ERRORS  accepted failed-request rate (default 0: any failure fails the run)

export const host = __ENV.HOST || 'hello.example.com';
export const scheme = __ENV.SCHEME || 'http';
export const path = __ENV.URL_PATH || '/';
export const url = `${scheme}://${host}${path}`;

export function hosts() {
  return __ENV.INGRESS_IP ? { [host]: __ENV.INGRESS_IP } : {};
}

export function thresholds() {
  const p99 = Number(__ENV.P99_MS || 50);
  const maxErrors = Number(__ENV.MAX_ERRORS || 0);
  return {
    http_req_duration: [`p(99)<${p99}`],
    http_req_failed: [`rate<=${maxErrors}`],
    checks: ['rate==1.0'],
  };
}

export function common() {
  return {
    hosts: hosts(),
    thresholds: thresholds(),
    // Test clusters usually have self-signed certificates.
    insecureSkipTLSVerify: true,
    // Keep connections alive between iterations (k6's default), like a browser or an API client.
    noConnectionReuse: false,
    discardResponseBodies: false,
  };
}
