//! Black-box request-smuggling suite: the real `gateway` binary, once per HTTP/1.1 engine
//! (`--http1-engine portico`, the fast path, and `--http1-engine hyper`), over plain HTTP and
//! TLS, in front of recording origins that frame every request themselves
//! (`portico_testkit::recording`).
//!
//! Each case writes exact bytes on a new connection, then a victim (`GET /public/victimN` with a
//! session cookie) comes on another new connection. A case passes when the client got exactly
//! the expected answers (see `smuggling/cases.rs`), the victim got its own response, the origins
//! saw exactly the expected requests (method, target, one `Host`, body, the proxy's own
//! `X-Real-IP`/`X-Forwarded-For`), the cookie only in the victim's request, no protocol error
//! and no half-sent request left waiting. Every failing case is listed before the test fails.

#[path = "smuggling/cases.rs"]
mod cases;
#[path = "smuggling/client.rs"]
mod client;
#[path = "smuggling/h2.rs"]
mod h2;
#[path = "common/process.rs"]
mod process;

use std::time::Duration;

use cases::{Case, Expect, SMUGGLED, Status, Want};
use client::{Dialer, Received, Transport, exchange};
use h2::Outcome;
use portico_testkit::certs::{TestCa, tls_secret_yaml};
use portico_testkit::recording::{Recorded, RecordingOrigin};

/// Where the two origins and the gateway's listeners live.
struct Env {
    engine: &'static str,
    app: RecordingOrigin,
    other: RecordingOrigin,
    dial: Dialer,
    victims: std::sync::atomic::AtomicU64,
}

fn service(name: &str, addr: std::net::SocketAddr) -> String {
    format!(
        "---\napiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\nspec:\n  ports:\n  - name: http\n    port: 80\n---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: {name}-1\n  labels:\n    kubernetes.io/service-name: {name}\naddressType: IPv4\nports:\n- name: http\n  port: {}\n  protocol: TCP\nendpoints:\n- addresses: [\"{}\"]\n  conditions:\n    ready: true\n",
        addr.port(),
        addr.ip()
    )
}

fn ingress(name: &str, host: &str, path: &str, svc: &str, extra: &[(&str, &str)]) -> String {
    let mut annotations = String::from("    nginx.ingress.kubernetes.io/ssl-redirect: \"false\"\n");
    for (k, v) in extra {
        annotations.push_str(&format!("    nginx.ingress.kubernetes.io/{k}: \"{v}\"\n"));
    }
    format!(
        "---\napiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: {name}\n  annotations:\n{annotations}spec:\n  ingressClassName: portico\n  tls:\n  - hosts: [{host}]\n    secretName: edge-tls\n  rules:\n  - host: {host}\n    http:\n      paths:\n      - path: {path}\n        pathType: Prefix\n        backend:\n          service:\n            name: {svc}\n            port:\n              number: 80\n"
    )
}

/// Start the origins and the gateway with `engine`; wait until both listeners route.
fn start(
    rt: &tokio::runtime::Runtime,
    engine: &'static str,
) -> (Env, process::Gateway, tempfile::TempDir) {
    let (app, other) = rt.block_on(async {
        (
            RecordingOrigin::start("app", "127.0.0.1")
                .await
                .expect("origin"),
            RecordingOrigin::start("other", "127.0.0.1")
                .await
                .expect("origin"),
        )
    });
    let ca = TestCa::new();
    let (crt, key) = ca.issue(&["app.test", "other.test"]);
    let manifests = [
        service("app", app.addr()),
        service("other", other.addr()),
        format!(
            "---\n{}",
            tls_secret_yaml("default", "edge-tls", &crt, &key)
        ),
        ingress("app", "app.test", "/public", "app", &[]),
        ingress(
            "app-admin",
            "app.test",
            "/admin",
            "app",
            &[("whitelist-source-range", "10.0.0.0/8")],
        ),
        ingress("other", "other.test", "/public", "other", &[]),
    ]
    .concat();
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("edge.yaml"), manifests).expect("write manifests");
    let (http, https, admin) = (
        format!("127.0.0.1:{}", process::free_port()),
        format!("127.0.0.1:{}", process::free_port()),
        format!("127.0.0.1:{}", process::free_port()),
    );
    let gw = process::Gateway::start(
        &[
            "--manifests",
            &dir.path().display().to_string(),
            "--state-dir",
            &dir.path().join(".state").display().to_string(),
            "--http-addr",
            &http,
            "--https-addr",
            &https,
            "--http1-engine",
            engine,
            "--no-service-proxy",
        ],
        &admin,
        &[("RUST_LOG", "warn")],
    );
    let dial = Dialer::new(
        http.parse().expect("addr"),
        https.parse().expect("addr"),
        &ca.cert_pem(),
    );
    let env = Env {
        engine,
        app,
        other,
        dial,
        victims: 0.into(),
    };
    rt.block_on(async {
        for transport in [Transport::Plain, Transport::Tls] {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
            loop {
                let mut io = env.dial.connect(transport, false).await;
                let got = exchange(
                    &mut *io,
                    b"GET /public/ready HTTP/1.1\r\nHost: app.test\r\n\r\n",
                    false,
                    1,
                )
                .await;
                if got.responses.first().is_some_and(|r| r.status == 200) {
                    break;
                }
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "{engine}: the routes were never served over {transport:?}: {got:?}"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    });
    (env, gw, dir)
}

/// What the origins saw since a mark, and the marks.
struct Marks {
    app: usize,
    other: usize,
    errors: usize,
}

impl Env {
    fn mark(&self) -> Marks {
        Marks {
            app: self.app.mark(),
            other: self.other.mark(),
            errors: self.app.errors().len() + self.other.errors().len(),
        }
    }

    fn seen(&self, m: &Marks) -> Vec<(&'static str, Recorded)> {
        let app = self.app.requests_since(m.app).into_iter();
        let other = self.other.requests_since(m.other).into_iter();
        app.map(|r| ("app", r))
            .chain(other.map(|r| ("other", r)))
            .collect()
    }

    /// The victim on a new connection, then the checks every case shares: the victim got its
    /// own answer, its cookie went nowhere else, no protocol error, nothing half-sent.
    async fn victim_and_origin_checks(
        &self,
        transport: Transport,
        marks: &Marks,
    ) -> Result<Vec<(&'static str, Recorded)>, String> {
        let n = self
            .victims
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let target = format!("/public/victim{n}");
        let cookie = format!("session=secret-{}-{n}", self.engine);
        let mut io = self.dial.connect(transport, false).await;
        let got = exchange(
            &mut *io,
            format!("GET {target} HTTP/1.1\r\nHost: app.test\r\nCookie: {cookie}\r\n\r\n")
                .as_bytes(),
            false,
            1,
        )
        .await;
        drop(io);
        let mut seen = self.seen(marks);
        let answer = format!("target={target} origin=app");
        if got.responses.first().map(|r| (r.status, r.body.as_str())) != Some((200, &answer)) {
            return Err(format!(
                "the victim did not get its own response: {got:?}; origin saw {}",
                show(&seen)
            ));
        }
        let with_cookie: Vec<_> = seen
            .iter()
            .filter(|(_, r)| r.headers.iter().any(|(_, v)| v.contains(&cookie)))
            .collect();
        if with_cookie.len() != 1 || with_cookie[0].1.target != target {
            return Err(format!(
                "the victim's cookie reached the origin in {}",
                show(&with_cookie.into_iter().cloned().collect::<Vec<_>>())
            ));
        }
        let errors: Vec<_> = [self.app.errors(), self.other.errors()].concat();
        if errors.len() > marks.errors {
            return Err(format!(
                "protocol error at the origin: {:?}",
                &errors[marks.errors..]
            ));
        }
        let pending = [self.app.pending(), self.other.pending()].concat();
        if !pending.is_empty() {
            return Err(format!("half-sent request left at the origin: {pending:?}"));
        }
        // The victim's own request is the last one at `app`, after what the case sent there
        // (`seen` lists `app`'s requests, in order, before `other`'s).
        let last_at_app = seen.iter().rposition(|(o, _)| *o == "app");
        match last_at_app {
            Some(i) if seen[i].1.target == target => {
                seen.remove(i);
            }
            _ => return Err(format!("the victim was not recorded: {}", show(&seen))),
        }
        Ok(seen)
    }
}

fn show(seen: &[(&'static str, Recorded)]) -> String {
    let parts: Vec<String> = seen
        .iter()
        .map(|(o, r)| {
            format!(
                "[{o}#{} {} {} host={:?} body={:?}]",
                r.conn,
                r.method,
                r.target,
                r.values("host").collect::<Vec<_>>(),
                String::from_utf8_lossy(&r.body)
            )
        })
        .collect();
    if parts.is_empty() {
        "nothing".into()
    } else {
        parts.join(" ")
    }
}

/// The origins saw exactly `want`, each with one `Host` as expected and the proxy's own
/// forwarding headers, once each (`X-Forwarded-Host` the same as `Host`).
fn check_forwarded(seen: &[(&'static str, Recorded)], want: &[Want]) -> Result<(), String> {
    let ok = seen.len() == want.len()
        && seen.iter().zip(want).all(|((origin, r), w)| {
            *origin == w.origin
                && r.method == w.method
                && r.target == w.target
                && r.body == w.body
                && r.header("host") == Some(w.host)
        });
    if !ok {
        return Err(format!(
            "origin saw {}, want {:?}",
            show(seen),
            want.iter()
                .map(|w| format!("{} {} {} host={}", w.origin, w.method, w.target, w.host))
                .collect::<Vec<_>>()
        ));
    }
    for ((_, r), w) in seen.iter().zip(want) {
        if r.header("x-forwarded-host") != Some(w.host) {
            return Err(format!(
                "{} reached the origin with X-Forwarded-Host {:?}",
                r.target,
                r.values("x-forwarded-host").collect::<Vec<_>>()
            ));
        }
        let xff_last = r
            .header("x-forwarded-for")
            .and_then(|v| v.rsplit(',').next())
            .map(str::trim);
        if r.header("x-real-ip") != Some("127.0.0.1") || xff_last != Some("127.0.0.1") {
            return Err(format!(
                "{} reached the origin with X-Real-IP {:?} and X-Forwarded-For {:?}",
                r.target,
                r.values("x-real-ip").collect::<Vec<_>>(),
                r.values("x-forwarded-for").collect::<Vec<_>>()
            ));
        }
    }
    Ok(())
}

fn check_client(got: &Received, expect: &Expect) -> Result<(), String> {
    if !got.extra.is_empty() {
        return Err(format!(
            "unexpected bytes after the responses: {:?}",
            String::from_utf8_lossy(&got.extra)
        ));
    }
    let refused = |s: Status| {
        got.responses
            .first()
            .is_some_and(|r| s.matches(r.status) && !r.body.starts_with("target="))
    };
    let forwarded = |w: &[Want]| {
        got.responses.len() == w.len()
            && got.responses.iter().zip(w).all(|(r, w)| {
                r.status == 200 && r.body == format!("target={} origin={}", w.target, w.origin)
            })
    };
    let ok = match expect {
        Expect::Refused(s) => refused(*s),
        Expect::Forwarded(w) => forwarded(w),
        Expect::Either(s, w) => refused(*s) || forwarded(w),
    };
    if ok {
        Ok(())
    } else {
        Err(format!("client got {got:?}, want {expect:?}"))
    }
}

async fn run_case(env: &Env, transport: Transport, case: &Case) -> Result<(), String> {
    let marks = env.mark();
    let scheme = match transport {
        Transport::Plain => "http",
        Transport::Tls => "https",
    };
    let bytes = String::from_utf8_lossy(&case.bytes).replace("{scheme}", scheme);
    // Non-UTF-8 payloads are not used; NUL bytes survive the round trip.
    let want_n = match &case.expect {
        Expect::Refused(_) => 1,
        Expect::Forwarded(w) | Expect::Either(_, w) => w.len(),
    };
    let mut io = env.dial.connect(transport, false).await;
    let got = exchange(&mut *io, bytes.as_bytes(), case.trickle, want_n).await;
    drop(io);
    let client = check_client(&got, &case.expect);
    let seen = env.victim_and_origin_checks(transport, &marks).await?;
    client?;
    let refused_now = got
        .responses
        .first()
        .is_some_and(|r| !r.body.starts_with("target="));
    match &case.expect {
        Expect::Refused(_) => check_forwarded(&seen, &[]),
        Expect::Either(_, _) if refused_now => check_forwarded(&seen, &[]),
        Expect::Forwarded(w) | Expect::Either(_, w) => check_forwarded(&seen, w),
    }
}

/// An HTTP/2 case: pseudo-headers `:method POST`, `:path /public/h2`, the scheme and
/// `:authority app.test`, then `headers`, then `data` in one DATA frame.
struct H2Case {
    name: &'static str,
    headers: &'static [(&'static str, &'static str)],
    data: &'static str,
    /// `None`: refused (RST_STREAM, GOAWAY or a 4xx) and the origin sees no request.
    /// `Some(body)`: answered by the origin, which saw exactly this body.
    forwarded: Option<&'static str>,
}

fn h2_cases() -> Vec<H2Case> {
    let h2 = |name, headers, data, forwarded| H2Case {
        name,
        headers,
        data,
        forwarded,
    };
    vec![
        h2(
            "8 h2 control: matching content-length",
            &[("content-length", "5")],
            "hello",
            Some("hello"),
        ),
        h2(
            "8 h2 DATA carrying a request, no content-length",
            &[],
            SMUGGLED,
            Some(SMUGGLED),
        ),
        h2(
            "8 h2 content-length larger than DATA",
            &[("content-length", "10")],
            "hello",
            None,
        ),
        h2(
            "8 h2 content-length smaller than DATA",
            &[("content-length", "2")],
            "hello",
            None,
        ),
        h2(
            "8 h2 content-length 0, DATA carrying a request",
            &[("content-length", "0")],
            SMUGGLED,
            None,
        ),
        h2(
            "8 h2 transfer-encoding: chunked",
            &[("transfer-encoding", "chunked")],
            "5\r\nhello\r\n0\r\n\r\n",
            None,
        ),
        h2(
            "8 h2 connection: keep-alive",
            &[("connection", "keep-alive")],
            "hello",
            None,
        ),
        h2(
            "8 h2 CRLF in a header value",
            &[("x-a", "a\r\nTransfer-Encoding: chunked")],
            "hello",
            None,
        ),
    ]
}

async fn run_h2_case(env: &Env, transport: Transport, case: &H2Case) -> Result<(), String> {
    let marks = env.mark();
    let scheme = match transport {
        Transport::Plain => "http",
        Transport::Tls => "https",
    };
    let mut headers = vec![
        (":method", "POST"),
        (":scheme", scheme),
        (":authority", "app.test"),
        (":path", "/public/h2"),
    ];
    headers.extend_from_slice(case.headers);
    let mut io = env.dial.connect(transport, true).await;
    let got = h2::request(&mut *io, &headers, Some(case.data.as_bytes())).await;
    drop(io);
    let seen = env.victim_and_origin_checks(transport, &marks).await?;
    match case.forwarded {
        None => {
            let refused = match &got {
                Outcome::Reset(_) | Outcome::GoAway(_) => true,
                Outcome::Response { status, .. } => (400..500).contains(status),
                Outcome::Failed(_) => false,
            };
            if !refused {
                return Err(format!("client got {got:?}, want a reset or a 4xx"));
            }
            check_forwarded(&seen, &[])
        }
        Some(body) => {
            let answer = "target=/public/h2 origin=app";
            if !matches!(&got, Outcome::Response { status: 200, body } if body == answer) {
                return Err(format!("client got {got:?}, want 200 {answer:?}"));
            }
            let want = Want {
                method: "POST",
                target: "/public/h2",
                host: "app.test",
                origin: "app",
                body: body.as_bytes().to_vec(),
            };
            check_forwarded(&seen, &[want])
        }
    }
}

/// After a failed case, flush what it may have left behind (a poisoned idle upstream connection
/// in the proxy's pool, a half-sent request at the origin) so the next case starts clean and
/// each failure is reported once, by the case that caused it: plain requests on new
/// connections until three in a row come back as their own with nothing left pending.
async fn settle(env: &Env, transport: Transport) {
    let mut clean = 0;
    for i in 0..20 {
        let errors = env.app.errors().len() + env.other.errors().len();
        let mut io = env.dial.connect(transport, false).await;
        let got = exchange(
            &mut *io,
            format!("GET /public/settle{i} HTTP/1.1\r\nHost: app.test\r\n\r\n").as_bytes(),
            false,
            1,
        )
        .await;
        let own = format!("target=/public/settle{i} origin=app");
        let ok = got.responses.first().is_some_and(|r| r.body == own)
            && env.app.errors().len() + env.other.errors().len() == errors
            && env.app.pending().is_empty()
            && env.other.pending().is_empty();
        clean = if ok { clean + 1 } else { 0 };
        if clean == 3 {
            return;
        }
    }
}

/// Run every case on one engine over both transports; the names of those that fail, with why.
fn suite(engine: &'static str) -> Vec<String> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let (env, _gw, _dir) = start(&rt, engine);
    rt.block_on(async {
        let mut failures = Vec::new();
        for transport in [Transport::Plain, Transport::Tls] {
            for case in cases::all() {
                if let Err(why) = run_case(&env, transport, &case).await {
                    failures.push(format!("{engine} {transport:?} [{}]: {why}", case.name));
                    settle(&env, transport).await;
                }
            }
            for case in h2_cases() {
                if let Err(why) = run_h2_case(&env, transport, &case).await {
                    failures.push(format!("{engine} {transport:?} [{}]: {why}", case.name));
                    settle(&env, transport).await;
                }
            }
        }
        failures
    })
}

fn assert_none_failed(engine: &str, failures: &[String]) {
    for f in failures {
        eprintln!("FAILED {f}");
    }
    assert!(
        failures.is_empty(),
        "{} smuggling case(s) failed on the {engine} engine:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn fast_path_engine_refuses_every_smuggling_case() {
    assert_none_failed("portico", &suite("portico"));
}

#[test]
fn hyper_engine_refuses_every_smuggling_case() {
    assert_none_failed("hyper", &suite("hyper"));
}
