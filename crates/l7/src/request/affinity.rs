//! Cookie affinity as ingress-nginx does it: the cookie names an endpoint; the value is a hash of
//! the Service and the endpoint address, so every replica and every reload read it alike.

use http::HeaderMap;
use http::header::{self, HeaderValue, InvalidHeaderValue};

use crate::annotations::{Affinity, SameSite};

/// The value of cookie `name` in the request's `Cookie` headers.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    cookie_in(
        headers.get_all(header::COOKIE).iter().map(|v| v.as_bytes()),
        name,
    )
}

/// The value of cookie `name` in raw `Cookie` header values (the HTTP/1.1 fast path has no
/// `HeaderMap`).
pub fn cookie_in<'a>(lines: impl Iterator<Item = &'a [u8]>, name: &str) -> Option<&'a str> {
    lines
        .filter_map(|v| std::str::from_utf8(v).ok())
        .find_map(|line| {
            line.split(';').find_map(|pair| {
                let (k, v) = pair.split_once('=')?;
                (k.trim() == name).then(|| v.trim())
            })
        })
}

/// User agents that reject `SameSite=None` cookies (the list ingress-nginx's
/// `session-cookie-conditional-samesite-none` checks).
pub fn samesite_none_incompatible(headers: &HeaderMap) -> bool {
    headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(user_agent_rejects_samesite_none)
}

/// [`samesite_none_incompatible`] for a raw `User-Agent` value.
pub fn user_agent_rejects_samesite_none(ua: &str) -> bool {
    let chrome_major = ua
        .split("Chrome/")
        .nth(1)
        .and_then(|rest| rest.split('.').next())
        .and_then(|m| m.parse::<u32>().ok());
    let ios12 = ua.contains("iPhone OS 12_") || ua.contains("iPad; CPU OS 12_");
    let mac_safari_1014 = ua.contains("Macintosh; Intel Mac OS X 10_14")
        && ua.contains("Version/")
        && ua.contains("Safari");
    let uc_old = ua.contains("UCBrowser/") && !ua.contains("UCBrowser/12.13");
    chrome_major.is_some_and(|m| (51..=66).contains(&m)) || ios12 || mac_safari_1014 || uc_old
}

fn plain_path(p: &str) -> bool {
    p.starts_with('/')
        && p.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/-_.~".contains(&b))
}

/// The `Set-Cookie` value naming an endpoint.
pub fn set_cookie(
    a: &Affinity,
    value: &str,
    route_path: &str,
    tls: bool,
    omit_samesite_none: bool,
) -> Result<HeaderValue, InvalidHeaderValue> {
    let path = a.path.as_deref().unwrap_or(if plain_path(route_path) {
        route_path
    } else {
        "/"
    });
    let mut s = format!("{}={value}; Path={path}", a.name);
    if let Some(d) = &a.domain {
        s.push_str("; Domain=");
        s.push_str(d);
    }
    if let Some(secs) = a.expires {
        let at = jiff::Timestamp::now()
            + jiff::SignedDuration::from_secs(secs.min(i64::MAX as u64) as i64);
        s.push_str(&format!(
            "; Expires={}",
            at.strftime("%a, %d %b %Y %H:%M:%S GMT")
        ));
    }
    if let Some(secs) = a.max_age {
        s.push_str(&format!("; Max-Age={secs}"));
    }
    match a.samesite {
        Some(SameSite::None) if omit_samesite_none => {}
        Some(SameSite::None) => s.push_str("; SameSite=None"),
        Some(SameSite::Lax) => s.push_str("; SameSite=Lax"),
        Some(SameSite::Strict) => s.push_str("; SameSite=Strict"),
        None => {}
    }
    if a.secure || tls {
        s.push_str("; Secure");
    }
    s.push_str("; HttpOnly");
    HeaderValue::from_str(&s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn affinity() -> Affinity {
        Affinity {
            name: "INGRESSCOOKIE".into(),
            persistent: false,
            path: None,
            domain: None,
            max_age: None,
            expires: None,
            samesite: None,
            conditional_samesite_none: false,
            secure: false,
            change_on_failure: false,
        }
    }

    #[test]
    fn the_cookie_is_found_among_others() {
        let mut h = HeaderMap::new();
        h.append(
            header::COOKIE,
            HeaderValue::from_static("a=1; INGRESSCOOKIE=abc"),
        );
        h.append(header::COOKIE, HeaderValue::from_static("b=2"));
        assert_eq!(cookie(&h, "INGRESSCOOKIE"), Some("abc"));
        assert_eq!(cookie(&h, "b"), Some("2"));
        assert_eq!(cookie(&h, "c"), None);
    }

    #[test]
    fn set_cookie_carries_the_annotated_attributes() {
        let mut a = affinity();
        assert_eq!(
            set_cookie(&a, "v", "/app", false, false).expect("valid"),
            "INGRESSCOOKIE=v; Path=/app; HttpOnly"
        );
        a.domain = Some("example.com".into());
        a.max_age = Some(60);
        a.samesite = Some(SameSite::None);
        a.secure = true;
        let v = set_cookie(&a, "v", "/", false, false).expect("valid");
        assert_eq!(
            v,
            "INGRESSCOOKIE=v; Path=/; Domain=example.com; Max-Age=60; SameSite=None; Secure; HttpOnly"
        );
        let v = set_cookie(&a, "v", "/", false, true).expect("valid");
        assert!(
            !v.to_str().expect("ascii").contains("SameSite"),
            "omitted for incompatible clients"
        );
        a.expires = Some(3600);
        let v = set_cookie(&a, "v", "/", false, false).expect("valid");
        assert!(
            v.to_str().expect("ascii").contains("GMT; Max-Age=60"),
            "{v:?}"
        );
    }

    #[test]
    fn old_chrome_rejects_samesite_none() {
        let mut h = HeaderMap::new();
        h.insert(
            header::USER_AGENT,
            HeaderValue::from_static("Mozilla/5.0 Chrome/62.0.3202.94 Safari/537.36"),
        );
        assert!(samesite_none_incompatible(&h));
        h.insert(
            header::USER_AGENT,
            HeaderValue::from_static("Mozilla/5.0 Chrome/120.0.0.0 Safari/537.36"),
        );
        assert!(!samesite_none_incompatible(&h));
    }
}
