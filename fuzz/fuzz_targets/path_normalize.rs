//! `portico_l7::path::normalize` never panics, is idempotent, and what it returns has no empty,
//! `.` or `..` segment left. The first input byte picks how encoded slashes are treated.
#![no_main]

use portico_l7::path::{EncodedSlashes, normalize};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let Ok(path) = std::str::from_utf8(rest) else {
        return;
    };
    // A function, not a value: the target does not assume `EncodedSlashes: Copy`.
    let slashes = || {
        if mode & 1 == 0 {
            EncodedSlashes::Reject
        } else {
            EncodedSlashes::Keep
        }
    };
    let Ok(once) = normalize(path, slashes()) else {
        return;
    };
    for bad in ["//", "/./", "/../"] {
        assert!(
            !once.contains(bad),
            "{path:?} normalised to {once:?}, which has {bad:?}"
        );
    }
    match normalize(&once, slashes()) {
        Ok(twice) => assert_eq!(once, twice, "not idempotent for {path:?}"),
        Err(e) => panic!("{path:?} normalised to {once:?}, which is refused: {e:?}"),
    }
});
