use super::*;
use proptest::prelude::*;

use EncodedSlashes::{Keep, Reject};

fn norm(p: &str) -> Result<String, PathError> {
    normalize(p, Reject).map(Cow::into_owned)
}

fn ok(p: &str) -> String {
    norm(p).unwrap_or_else(|e| panic!("{p:?}: {e}"))
}

#[test]
fn a_normal_path_is_returned_without_a_copy() {
    for p in [
        "/",
        "/a",
        "/a/",
        "/public/x/y.html",
        "/a%20b/%C3%A9",
        "/.well-known/acme",
        "/a..b/...",
        "/ü/☃",
    ] {
        assert!(
            matches!(normalize(p, Reject), Ok(Cow::Borrowed(q)) if q == p),
            "{p}"
        );
    }
    assert!(matches!(normalize("/a%2Fb", Keep), Ok(Cow::Borrowed(_))));
}

#[test]
fn escapes_of_unreserved_characters_are_decoded_and_the_rest_uppercased() {
    assert_eq!(ok("/%41%62%2d%2E%5f%7E%30"), "/Ab-._~0");
    assert_eq!(ok("/a%3fb%c3%a9%20"), "/a%3Fb%C3%A9%20");
    // A control character stays encoded: never decoded, so never raw in the head sent upstream.
    assert_eq!(ok("/a%0d%0Ab"), "/a%0D%0Ab");
}

#[test]
fn a_malformed_escape_is_refused() {
    assert_eq!(norm("/a%"), Err(PathError::BadEscape { at: 2 }));
    assert_eq!(norm("/a%4"), Err(PathError::BadEscape { at: 2 }));
    assert_eq!(norm("/%zz"), Err(PathError::BadEscape { at: 1 }));
    assert_eq!(norm("/%4g/x"), Err(PathError::BadEscape { at: 1 }));
    assert_eq!(norm("/a/%%41"), Err(PathError::BadEscape { at: 3 }));
}

#[test]
fn nul_and_control_characters_are_refused() {
    assert_eq!(norm("/a%00"), Err(PathError::NulOrControl { at: 2 }));
    assert_eq!(norm("/a\0"), Err(PathError::NulOrControl { at: 2 }));
    assert_eq!(norm("/a\r\nb"), Err(PathError::NulOrControl { at: 2 }));
    assert_eq!(norm("/\t"), Err(PathError::NulOrControl { at: 1 }));
    assert_eq!(norm("/x\x7f"), Err(PathError::NulOrControl { at: 2 }));
}

#[test]
fn dot_segments_are_resolved_also_when_encoded() {
    assert_eq!(ok("/public/x/../y"), "/public/y");
    assert_eq!(ok("/public/./../admin"), "/admin");
    assert_eq!(ok("/public/../admin"), "/admin");
    assert_eq!(ok("/public/%2e%2e/admin"), "/admin");
    assert_eq!(ok("/public/.%2E/admin"), "/admin");
    assert_eq!(ok("/a/%2e/b"), "/a/b");
    assert_eq!(ok("/a/b/."), "/a/b/");
    assert_eq!(ok("/a/b/.."), "/a/");
    assert_eq!(ok("/a/.."), "/");
    assert_eq!(ok("/."), "/");
    // Only whole segments are dots.
    assert_eq!(ok("/a/..b/.c/..."), "/a/..b/.c/...");
}

#[test]
fn climbing_above_the_root_is_refused_not_clamped() {
    for p in [
        "/..",
        "/../x",
        "/%2e%2e/x",
        "/a/../..",
        "/a/./../../b",
        "//..",
        "/./..",
    ] {
        assert_eq!(norm(p), Err(PathError::AboveRoot), "{p}");
    }
}

#[test]
fn repeated_slashes_are_merged_before_dots_are_resolved() {
    assert_eq!(ok("//admin"), "/admin");
    assert_eq!(ok("/a///b//"), "/a/b/");
    assert_eq!(ok("//"), "/");
    // As nginx with merge_slashes: `/a//../b` is `/a/../b`.
    assert_eq!(ok("/a//../b"), "/b");
}

#[test]
fn encoded_slashes_are_refused_by_default() {
    assert_eq!(norm("/a/%2Fb"), Err(PathError::EncodedSlash { at: 3 }));
    assert_eq!(
        norm("/public/..%2fadmin"),
        Err(PathError::EncodedSlash { at: 10 })
    );
    assert_eq!(norm("/a%5cb"), Err(PathError::EncodedSlash { at: 2 }));
    assert_eq!(
        norm("/public/..\\admin"),
        Err(PathError::Backslash { at: 10 })
    );
}

#[test]
fn encoded_slashes_kept_stay_opaque_in_their_segment() {
    let keep = |p| normalize(p, Keep).map(Cow::into_owned);
    assert_eq!(keep("/a/%2fb"), Ok("/a/%2Fb".into()));
    // `..%2F` is not a dot segment: nothing climbs.
    assert_eq!(keep("/public/..%2fadmin"), Ok("/public/..%2Fadmin".into()));
    assert_eq!(keep("/public/..\\admin"), Ok("/public/..%5Cadmin".into()));
    assert_eq!(keep("/x/%2F/../y"), Ok("/x/y".into()));
    assert_eq!(keep("/a%5c%2e%2e"), Ok("/a%5C..".into()));
    assert_eq!(keep("/a/%00"), Err(PathError::NulOrControl { at: 3 }));
}

#[test]
fn a_path_must_start_with_a_slash_and_carry_no_fragment() {
    assert_eq!(norm(""), Err(PathError::NotAbsolute));
    assert_eq!(norm("*"), Err(PathError::NotAbsolute));
    assert_eq!(norm("a/b"), Err(PathError::NotAbsolute));
    assert_eq!(norm("/a#/../b"), Err(PathError::Fragment { at: 2 }));
}

/// A path made of segments that are unreserved characters, dots and empty strings.
fn simple_path() -> impl Strategy<Value = String> {
    let seg = prop_oneof![
        Just(String::new()),
        Just(".".to_owned()),
        Just("..".to_owned()),
        "[a-zA-Z0-9._~-]{1,4}",
    ];
    prop::collection::vec(seg, 0..8).prop_map(|s| format!("/{}", s.join("/")))
}

/// Any path: simple parts plus escapes (valid and not), slashes, backslashes and odd bytes.
fn any_path() -> impl Strategy<Value = String> {
    let part = prop_oneof![
        "[a-z.~]{1,3}",
        Just("/".to_owned()),
        Just("..".to_owned()),
        Just("%2e".to_owned()),
        Just("%2E".to_owned()),
        Just("%2f".to_owned()),
        Just("%5C".to_owned()),
        Just("\\".to_owned()),
        Just("%41".to_owned()),
        Just("%3f".to_owned()),
        Just("%".to_owned()),
        Just("%0".to_owned()),
        Just("%00".to_owned()),
        Just("é".to_owned()),
        Just("\u{1}".to_owned()),
    ];
    prop::collection::vec(part, 0..12).prop_map(|p| format!("/{}", p.concat()))
}

/// The textbook algorithm for paths of unreserved characters and slashes.
fn reference(path: &str) -> Result<String, PathError> {
    let segs: Vec<&str> = path[1..].split('/').collect();
    let mut stack: Vec<&str> = Vec::new();
    for s in &segs {
        match *s {
            "" | "." => {}
            ".." => {
                if stack.pop().is_none() {
                    return Err(PathError::AboveRoot);
                }
            }
            s => stack.push(s),
        }
    }
    let trailing = matches!(segs.last(), Some(&("" | "." | "..")));
    let mut out = format!("/{}", stack.join("/"));
    if trailing && !stack.is_empty() {
        out.push('/');
    }
    Ok(out)
}

proptest! {
    #[test]
    fn simple_paths_match_the_reference(p in simple_path()) {
        prop_assert_eq!(norm(&p), reference(&p));
    }

    #[test]
    fn normalising_twice_changes_nothing(p in any_path(), keep in any::<bool>()) {
        let mode = if keep { Keep } else { Reject };
        if let Ok(once) = normalize(&p, mode) {
            let twice = normalize(&once, mode);
            prop_assert!(matches!(twice, Ok(Cow::Borrowed(_))), "{:?} -> {:?} -> {:?}", p, once, twice);
        }
    }

    #[test]
    fn the_output_has_no_dot_or_empty_segments(p in any_path(), keep in any::<bool>()) {
        let mode = if keep { Keep } else { Reject };
        if let Ok(out) = normalize(&p, mode) {
            prop_assert!(out.starts_with('/'));
            for bad in ["/./", "/../", "//"] {
                prop_assert!(!out.contains(bad), "{:?} -> {:?}", p, out);
            }
            prop_assert!(!out.ends_with("/.") && !out.ends_with("/.."), "{:?} -> {:?}", p, out);
            let odd = out.contains('\\') || out.contains('\u{1}');
            prop_assert!(!odd, "{:?} -> {:?}", p, out);
            if !keep {
                prop_assert!(!out.contains("%2F") && !out.contains("%5C"));
            }
        }
    }

    #[test]
    fn the_output_never_climbs_above_the_root(p in any_path()) {
        if let Ok(out) = normalize(&p, Keep) {
            // Walking the output's segments never goes below depth zero.
            let mut depth: i32 = 0;
            for s in out[1..].split('/') {
                match s {
                    ".." => depth -= 1,
                    "" | "." => {}
                    _ => depth += 1,
                }
                prop_assert!(depth >= 0, "{:?} -> {:?}", p, out);
            }
        }
    }

    #[test]
    fn a_borrowed_answer_is_the_input(p in any_path()) {
        if let Ok(Cow::Borrowed(q)) = normalize(&p, Reject) {
            prop_assert_eq!(q, p.as_str());
            prop_assert_eq!(rebuild(&p, Reject), Ok(p.clone()));
        }
    }
}
