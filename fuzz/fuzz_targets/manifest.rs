//! `portico_model::manifest::parse_file` on arbitrary text never panics, and every error names
//! the file and the document it came from. The first input byte picks YAML or JSON.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portico_model::manifest::parse_file;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    let file = if mode & 1 == 0 {
        "fuzz.yaml"
    } else {
        "fuzz.json"
    };
    for (origin, parsed) in parse_file(file, &text) {
        assert_eq!(origin.file.as_deref(), Some(file));
        assert!(
            origin.document.is_some_and(|d| d >= 1),
            "no document number: {origin:?}"
        );
        if let Err(e) = parsed {
            assert_eq!(e.origin, origin, "the error names another place: {e}");
            let shown = e.to_string();
            assert!(
                shown.contains(&origin.to_string()),
                "{shown:?} does not say where"
            );
        }
    }
});
