//! TLS and HTTP/2 with real clients: curl with `--resolve` (SNI), nghttp (h2), rcgen certificates.

#[path = "common/l7.rs"]
mod l7common;

use l7common::*;
use portico_l7::L7Config;

fn cert(cn: &str, names: &[&str]) -> (String, String) {
    let mut params =
        rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
            .expect("params");
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cn);
    let key = rcgen::KeyPair::generate().expect("key");
    let cert = params.self_signed(&key).expect("sign");
    (cert.pem(), key.serialize_pem())
}

fn indent(s: &str) -> String {
    s.lines().map(|l| format!("    {l}\n")).collect()
}

fn secret(name: &str, (crt, key): &(String, String)) -> String {
    format!(
        "---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\ntype: kubernetes.io/tls\nstringData:\n  tls.crt: |\n{}  tls.key: |\n{}",
        indent(crt),
        indent(key)
    )
}

fn with_tls(ingress: String, hosts: &[&str], secret: &str) -> String {
    format!(
        "{ingress}  tls:\n  - hosts: [{}]\n    secretName: {secret}\n",
        hosts.join(", ")
    )
}

/// `curl -vk` over TLS with SNI `host`: (status, HTTP version, certificate subject, body).
async fn curl(
    https: std::net::SocketAddr,
    host: &str,
    path: &str,
    extra: &[&str],
) -> (String, String, String, String) {
    let url = format!("https://{host}:{}{path}", https.port());
    let resolve = format!("{host}:{}:127.0.0.1", https.port());
    let mut args = vec![
        "-vsk",
        "--max-time",
        "10",
        "--resolve",
        &resolve,
        "-w",
        "\n%{http_code} %{http_version}",
    ];
    args.extend_from_slice(extra);
    args.push(&url);
    let out = tokio::process::Command::new("curl")
        .args(&args)
        .output()
        .await
        .expect("curl runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let subject = stderr
        .lines()
        .find_map(|l| l.split_once("subject: ").map(|(_, s)| s.trim().to_owned()))
        .unwrap_or_default();
    let (body, tail) = stdout.rsplit_once('\n').unwrap_or(("", &stdout));
    let (code, version) = tail.split_once(' ').unwrap_or((tail, ""));
    (
        code.to_owned(),
        version.to_owned(),
        subject,
        body.to_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_host_gets_its_certificate_unknown_and_broken_get_the_default_and_http_redirects() {
    let a = Origin::start("a", "127.0.0.1").await;
    let (cert_a, cert_b) = (
        cert("a.example.com", &["a.example.com"]),
        cert("wild.b.example.com", &["*.b.example.com"]),
    );
    let manifests = |cert_a: &(String, String)| {
        [
            service("web", &[a.addr]),
            secret("a-tls", cert_a),
            secret("b-tls", &cert_b),
            with_tls(
                ingress("a", &[], &[("a.example.com", "/", "Prefix", "web")]),
                &["a.example.com"],
                "a-tls",
            ),
            with_tls(
                ingress("b", &[], &[("*.b.example.com", "/", "Prefix", "web")]),
                &["\"*.b.example.com\""],
                "b-tls",
            ),
            with_tls(
                ingress("broken", &[], &[("c.example.com", "/", "Prefix", "web")]),
                &["c.example.com"],
                "missing",
            ),
            with_tls(
                ingress(
                    "plain-ok",
                    &[("ssl-redirect", "false")],
                    &[("d.example.com", "/", "Prefix", "web")],
                ),
                &["d.example.com"],
                "a-tls",
            ),
        ]
        .concat()
    };
    let default = cert("default.portico", &["default.portico"]);
    let cfg = L7Config {
        default_cert: Some((default.0.into_bytes(), default.1.into_bytes())),
        hsts_max_age: Some(600),
        ..L7Config::default()
    };
    let gw = Gateway::start_with(&manifests(&cert_a), cfg).await;

    let (code, version, subject, body) = curl(gw.https, "a.example.com", "/x", &[]).await;
    assert_eq!(
        (code.as_str(), subject.as_str()),
        ("200", "CN=a.example.com"),
        "{body}"
    );
    assert_eq!(version, "2", "ALPN negotiates HTTP/2");
    assert!(body.contains("origin=a"));
    assert_eq!(
        curl(gw.https, "x.b.example.com", "/", &[]).await.2,
        "CN=wild.b.example.com"
    );
    assert_eq!(
        curl(gw.https, "unknown.example.org", "/", &[]).await.2,
        "CN=default.portico"
    );
    let (code, _, subject, _) = curl(gw.https, "c.example.com", "/", &[]).await;
    assert_eq!(
        (code.as_str(), subject.as_str()),
        ("200", "CN=default.portico"),
        "a broken Secret serves the default certificate"
    );
    assert!(
        gw.errors().iter().any(
            |e| e.to_string().contains("default/broken") && e.field == "spec.tls[0].secretName"
        )
    );

    let (code, _, _, _) = curl(
        gw.https,
        "a.example.com",
        "/",
        &["--http1.1", "-D", "/dev/stderr"],
    )
    .await;
    assert_eq!(code, "200");

    // HTTP/1.1 over TLS takes the fast path: HSTS and X-Forwarded-Proto as on the general path.
    let out = tokio::process::Command::new("curl")
        .args(["-sk", "--http1.1", "-D", "-", "--resolve"])
        .arg(format!("a.example.com:{}:127.0.0.1", gw.https.port()))
        .arg(format!("https://a.example.com:{}/h1", gw.https.port()))
        .output()
        .await
        .expect("curl runs");
    let text = String::from_utf8_lossy(&out.stdout).to_ascii_lowercase();
    assert!(text.starts_with("http/1.1 200"), "{text}");
    assert!(
        text.contains("strict-transport-security: max-age=600; includesubdomains"),
        "{text}"
    );
    assert!(text.contains("x-echo-x-forwarded-proto: https"), "{text}");

    let c = client();
    let (s, h, _) = get(&c, gw.http, "a.example.com", "/path?q=1", &[]).await;
    assert_eq!(s, 308);
    assert_eq!(
        h["location"],
        format!("https://a.example.com:{}/path?q=1", gw.https.port()).as_str()
    );
    assert_eq!(
        get(&c, gw.http, "d.example.com", "/", &[]).await.0,
        200,
        "ssl-redirect: false"
    );
    assert_eq!(
        get(&c, gw.http, "c.example.com", "/", &[]).await.0,
        308,
        "a host with a broken Secret is never served in plaintext"
    );

    // HSTS on HTTPS answers of TLS hosts.
    let out = tokio::process::Command::new("curl")
        .args([
            "-sk",
            "-D",
            "-",
            "-o",
            "/dev/null",
            "--resolve",
            &format!("a.example.com:{}:127.0.0.1", gw.https.port()),
        ])
        .arg(format!("https://a.example.com:{}/", gw.https.port()))
        .output()
        .await
        .expect("curl runs");
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .to_ascii_lowercase()
            .contains("strict-transport-security: max-age=600")
    );

    // Rotation: a new certificate in the Secret is served on the next handshake, no restart.
    let rotated = cert("a.example.com-rotated", &["a.example.com"]);
    gw.publish(&manifests(&rotated)).await;
    assert_eq!(
        curl(gw.https, "a.example.com", "/", &[]).await.2,
        "CN=a.example.com-rotated"
    );
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nghttp_speaks_http2() {
    portico_testkit::require!(
        portico_testkit::tool_missing("nghttp").is_none(),
        "needs `nghttp` (nghttp2-client)"
    );
    let a = Origin::start("a", "127.0.0.1").await;
    let gw = Gateway::start(
        &[
            service("web", &[a.addr]),
            ingress("web", &[], &[("h2.example.com", "/", "Prefix", "web")]),
        ]
        .concat(),
    )
    .await;
    let out = tokio::process::Command::new("nghttp")
        .args([
            "-v",
            "-H",
            ":authority: h2.example.com",
            &format!("https://127.0.0.1:{}/hello", gw.https.port()),
        ])
        .output()
        .await
        .expect("nghttp runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("negotiated protocol: h2"), "{stdout}");
    assert!(
        stdout.contains("origin=a path=/hello host=h2.example.com"),
        "{stdout}"
    );
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_edited_into_a_broken_one_keeps_serving_its_last_good_certificate() {
    let a = Origin::start("a", "127.0.0.1").await;
    let good = cert("a.example.com", &["a.example.com"]);
    let other = cert("other", &["other.example.com"]);
    let manifests = |a_tls: &(String, String)| {
        [
            service("web", &[a.addr]),
            secret("a-tls", a_tls),
            with_tls(
                ingress("a", &[], &[("a.example.com", "/", "Prefix", "web")]),
                &["a.example.com"],
                "a-tls",
            ),
        ]
        .concat()
    };
    let default = cert("default.portico", &["default.portico"]);
    let cfg = L7Config {
        default_cert: Some((default.0.into_bytes(), default.1.into_bytes())),
        ..L7Config::default()
    };
    let gw = Gateway::start_with(&manifests(&good), cfg).await;
    let subject = |host: &'static str| {
        let https = gw.https;
        async move { curl(https, host, "/", &[]).await.2 }
    };
    assert_eq!(subject("a.example.com").await, "CN=a.example.com");

    // The key replaced by another certificate's: a mismatch. The host keeps its certificate and
    // the error names the Secret and what is wrong with it.
    let mismatched = (good.0.clone(), other.1.clone());
    gw.publish(&manifests(&mismatched)).await;
    let (code, _, subj, body) = curl(gw.https, "a.example.com", "/", &[]).await;
    assert_eq!(
        (code.as_str(), subj.as_str()),
        ("200", "CN=a.example.com"),
        "the last good certificate, not the default one: {body}"
    );
    let errors = gw.errors();
    let err = errors
        .iter()
        .find(|e| e.field == "spec.tls[0].secretName")
        .expect("the broken Secret is reported");
    let text = err.to_string();
    assert!(text.contains("Secret default/a-tls"), "{text}");
    assert!(text.contains("tls.key does not belong"), "{text}");
    assert!(
        text.contains("the last good certificate keeps serving"),
        "{text}"
    );

    // Bad PEM in tls.crt: still the last good certificate.
    let garbage = (
        "-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n".to_owned(),
        good.1.clone(),
    );
    gw.publish(&manifests(&garbage)).await;
    assert_eq!(subject("a.example.com").await, "CN=a.example.com");

    // Fixed with a new certificate: that one serves, and the error is gone.
    let rotated = cert("a.example.com-rotated", &["a.example.com"]);
    gw.publish(&manifests(&rotated)).await;
    assert_eq!(subject("a.example.com").await, "CN=a.example.com-rotated");
    assert!(gw.errors().is_empty(), "{:?}", gw.errors());

    // Deleted: the certificate stops serving (the default one, never plaintext).
    let without_secret = [
        service("web", &[a.addr]),
        with_tls(
            ingress("a", &[], &[("a.example.com", "/", "Prefix", "web")]),
            &["a.example.com"],
            "a-tls",
        ),
    ]
    .concat();
    gw.publish(&without_secret).await;
    assert_eq!(subject("a.example.com").await, "CN=default.portico");

    // Created again already broken: never good while watched, so the default certificate.
    gw.publish(&manifests(&mismatched)).await;
    assert_eq!(subject("a.example.com").await, "CN=default.portico");
    gw.shutdown().await;
}
