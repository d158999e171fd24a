use super::*;
use crate::routes::policy::HashKey;

fn parse_map(pairs: &[(&str, &str)]) -> Parsed {
    let map = pairs
        .iter()
        .map(|(k, v)| (format!("{PREFIX}{k}"), (*v).to_owned()))
        .collect();
    parse(&ObjectKey::new("default", "web"), &map)
}

fn options(pairs: &[(&str, &str)]) -> Options {
    parse_map(pairs).options.expect("valid")
}

fn error(pairs: &[(&str, &str)]) -> Invalid {
    parse_map(pairs).options.expect_err("invalid")
}

#[test]
fn defaults_match_ingress_nginx() {
    let o = options(&[]);
    assert_eq!(o.filters.https_redirect, HttpsRedirect::WhenTlsHost);
    assert_eq!(o.policy.body_limit, Some(1 << 20));
    assert_eq!(o.policy.timeouts.connect, Duration::from_secs(5));
    assert_eq!(o.policy.timeouts.read, Duration::from_secs(60));
    assert_eq!(o.policy.timeouts.send, Duration::from_secs(60));
    assert_eq!(o.policy.tries, 3);
    assert!(o.policy.request_buffering);
    assert_eq!(o.protocol, BackendProtocol::Http);
    assert!(o.canary.is_none() && !o.regex_paths());
}

#[test]
fn request_buffering_is_on_unless_turned_off() {
    let p = parse_map(&[("proxy-request-buffering", "off")]);
    assert!(p.unsupported.is_empty());
    assert!(!p.options.expect("valid").policy.request_buffering);
    let e = error(&[("proxy-request-buffering", "maybe")]);
    assert_eq!(
        e.field,
        "metadata.annotations[nginx.ingress.kubernetes.io/proxy-request-buffering]"
    );
    assert_eq!(e.reason, InvalidReason::BadAnnotationValue);
}

#[test]
fn sizes_parse_like_nginx() {
    assert_eq!(parse_size("8m"), Some(Some(8 << 20)));
    assert_eq!(parse_size("512k"), Some(Some(512 << 10)));
    assert_eq!(parse_size("1g"), Some(Some(1 << 30)));
    assert_eq!(parse_size("100"), Some(Some(100)));
    assert_eq!(parse_size("0"), Some(None));
    assert_eq!(parse_size("lots"), None);
    assert_eq!(parse_size(""), None);
    assert_eq!(parse_size("99999999999999999999g"), None);
    assert_eq!(options(&[("proxy-body-size", "0")]).policy.body_limit, None);
}

#[test]
fn a_bad_value_names_the_ingress_and_the_annotation() {
    let e = error(&[("whitelist-source-range", "10.0.0.0/8, nonsense")]);
    assert_eq!(
        e.field,
        "metadata.annotations[nginx.ingress.kubernetes.io/whitelist-source-range]"
    );
    assert_eq!(e.reason, InvalidReason::BadAnnotationValue);
    assert_eq!(
        e.to_string(),
        "Ingress default/web: metadata.annotations[nginx.ingress.kubernetes.io/whitelist-source-range]: \"10.0.0.0/8, nonsense\" is not a comma-separated list of CIDRs"
    );
}

#[test]
fn every_bad_value_is_refused_by_its_own_name() {
    let cases: &[(&str, &str, &str)] = &[
        ("use-regex", "yes", "\"yes\" is not true or false"),
        ("ssl-redirect", "1", "\"1\" is not true or false"),
        (
            "proxy-read-timeout",
            "0",
            "\"0\" is not a number of seconds (1-86400)",
        ),
        (
            "proxy-send-timeout",
            "86401",
            "\"86401\" is not a number of seconds (1-86400)",
        ),
        ("app-root", "app", "\"app\" must be a path starting with /"),
        ("proxy-next-upstream-tries", "-1", "\"-1\" is not a number"),
        (
            "backend-protocol",
            "FCGI",
            "\"FCGI\" is not supported: expected HTTP, HTTPS, GRPC or GRPCS",
        ),
        (
            "load-balance",
            "least_conn",
            "\"least_conn\" is not supported: expected round_robin or ewma",
        ),
        ("proxy-body-size", "big", "\"big\" is not a size such as 8m"),
        (
            "permanent-redirect",
            "http://a b",
            "\"http://a b\" is not a URL",
        ),
        ("affinity", "ip", "\"ip\" is not supported: expected cookie"),
    ];
    for (short, value, message) in cases {
        let e = error(&[(short, value)]);
        assert_eq!(
            e.field,
            format!("metadata.annotations[{PREFIX}{short}]"),
            "{short}"
        );
        assert_eq!(e.message, *message, "{short}");
    }
}

#[test]
fn the_first_bad_value_is_the_one_reported() {
    let e = error(&[("use-regex", "x"), ("load-balance", "x")]);
    assert!(e.field.ends_with("use-regex]"), "{e}");
    let e = error(&[
        ("permanent-redirect", "/a"),
        ("temporal-redirect-code", "200"),
        ("temporal-redirect", "/b"),
    ]);
    assert!(
        e.field.ends_with("temporal-redirect-code]"),
        "checked though the permanent one wins: {e}"
    );
}

#[test]
fn unsupported_annotations_are_listed_once_each() {
    let p = parse_map(&[
        ("configuration-snippet", "x"),
        ("ssl-redirect", "false"),
        ("enable-cors", "true"),
    ]);
    let fields: Vec<_> = p.unsupported.iter().map(|i| i.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "metadata.annotations[nginx.ingress.kubernetes.io/configuration-snippet]",
            "metadata.annotations[nginx.ingress.kubernetes.io/enable-cors]"
        ]
    );
    assert!(
        p.unsupported
            .iter()
            .all(|i| i.reason == InvalidReason::UnsupportedAnnotation
                && i.message == "not supported by Portico; ignored")
    );
    assert_eq!(
        p.options.expect("valid").filters.https_redirect,
        HttpsRedirect::Never
    );
}

#[test]
fn https_redirection_is_forced_or_per_tls_host_or_off() {
    let mode = |pairs: &[(&str, &str)]| options(pairs).filters.https_redirect;
    assert_eq!(
        mode(&[("force-ssl-redirect", "true")]),
        HttpsRedirect::Always
    );
    assert_eq!(
        mode(&[("force-ssl-redirect", "true"), ("ssl-redirect", "false")]),
        HttpsRedirect::Always
    );
    assert_eq!(mode(&[("ssl-redirect", "false")]), HttpsRedirect::Never);
}

#[test]
fn redirects_take_their_codes_and_the_permanent_one_wins() {
    let o = options(&[("temporal-redirect", "https://b.example/")]);
    assert_eq!(
        o.filters.redirect,
        Some(Redirect {
            location: "https://b.example/".into(),
            status: 302
        })
    );
    let o = options(&[
        ("permanent-redirect", "/moved"),
        ("permanent-redirect-code", "308"),
        ("temporal-redirect", "/elsewhere"),
    ]);
    assert_eq!(
        o.filters.redirect,
        Some(Redirect {
            location: "/moved".into(),
            status: 308
        })
    );
    let e = error(&[
        ("permanent-redirect", "/x"),
        ("permanent-redirect-code", "404"),
    ]);
    assert_eq!(e.message, "404 is not a redirect status (300-308)");
}

#[test]
fn rewrite_target_makes_paths_regexes() {
    let o = options(&[("rewrite-target", "/$2")]);
    assert!(o.regex_paths());
    assert_eq!(
        o.filters.rewrite,
        Some(UrlRewrite {
            target: "/$2".into()
        })
    );
    assert!(options(&[("use-regex", "true")]).regex_paths());
}

#[test]
fn a_canary_total_beyond_u32_is_refused_by_name_not_truncated() {
    // 4294967296 truncated to u32 was 0, and every request divided by it.
    for total in ["4294967296", "0"] {
        let err = error(&[
            ("canary", "true"),
            ("canary-weight", "0"),
            ("canary-weight-total", total),
        ]);
        assert!(
            format!("{err:?}").contains("canary-weight-total"),
            "{err:?}"
        );
    }
    let err = error(&[("canary", "true"), ("canary-weight", "101")]);
    assert_eq!(err.message, "101 is not within 0-100");
}

#[test]
fn canary_annotations_are_ignored_without_canary_true() {
    assert_eq!(options(&[("canary-weight", "5000")]).canary, None);
}

#[test]
fn affinity_and_canary_parse() {
    let o = options(&[
        ("affinity", "cookie"),
        ("session-cookie-name", "route"),
        ("session-cookie-max-age", "60"),
        ("session-cookie-samesite", "None"),
        ("canary", "true"),
        ("canary-weight", "30"),
        ("canary-by-header", "X-Canary"),
        ("upstream-hash-by", "$http_x_user"),
    ]);
    let a = o.policy.affinity.expect("affinity");
    assert_eq!(
        (a.name.as_str(), a.max_age, a.samesite),
        ("route", Some(60), Some(SameSite::None))
    );
    let c = o.canary.expect("canary");
    assert_eq!((c.weight, c.weight_total), (30, 100));
    assert_eq!(c.by_header.expect("header").as_str(), "x-canary");
    assert_eq!(
        o.policy.hash_by,
        Some(HashKey::Header(HeaderName::parse("x-user").expect("valid")))
    );
}

#[test]
fn cookie_attributes_and_names_are_checked() {
    let e = error(&[("affinity", "cookie"), ("session-cookie-name", "a b")]);
    assert_eq!(e.message, "\"a b\" is not a valid cookie name");
    let e = error(&[("affinity", "cookie"), ("session-cookie-path", "/a;b")]);
    assert_eq!(e.message, "\"/a;b\" may not contain spaces, ';' or ','");
    let e = error(&[("affinity", "cookie"), ("affinity-mode", "sticky")]);
    assert_eq!(e.message, "\"sticky\": expected balanced or persistent");
    let e = error(&[("canary", "true"), ("canary-by-header", "a b")]);
    assert_eq!(e.message, "\"a b\" is not a header name");
}

#[test]
fn hash_keys_are_the_nginx_variables() {
    let key = |v: &str| options(&[("upstream-hash-by", v)]).policy.hash_by;
    assert_eq!(key("$request_uri"), Some(HashKey::RequestUri));
    assert_eq!(key("$binary_remote_addr"), Some(HashKey::RemoteAddr));
    assert_eq!(key("$http_host"), Some(HashKey::Host));
    assert_eq!(
        key("$cookie_session"),
        Some(HashKey::Cookie("session".into()))
    );
    assert_eq!(key("$arg_id"), Some(HashKey::Arg("id".into())));
    let e = error(&[("upstream-hash-by", "request_uri")]);
    assert!(
        e.message.starts_with("\"request_uri\" is not supported"),
        "{e}"
    );
}

#[test]
fn allow_lists_join_and_take_plain_addresses() {
    let o = options(&[
        ("whitelist-source-range", "10.0.0.0/8"),
        ("allowlist-source-range", "192.0.2.1, ::1"),
    ]);
    let allow: Vec<String> = o
        .policy
        .allow
        .expect("allow-list")
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(allow, ["10.0.0.0/8", "192.0.2.1/32", "::1/128"]);
}
