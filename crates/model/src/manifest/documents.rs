//! A YAML file split into its documents as kubectl splits it (on a line that is `---`, perhaps
//! followed by spaces or a comment), so that a syntax error in one document never takes the
//! others with it; and the kind and name a broken document shows, for its error.

/// One document of a file.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Document<'a> {
    /// 1-based, in file order.
    pub number: usize,
    /// The 1-based line of the file the document's text starts on.
    pub first_line: usize,
    pub text: &'a str,
}

fn is_separator(line: &str) -> bool {
    line.strip_prefix("---").is_some_and(|rest| {
        let rest = rest.trim();
        rest.is_empty() || rest.starts_with('#')
    })
}

/// Whether a text holds nothing but blank lines and comments.
fn is_blank(text: &str) -> bool {
    text.lines().all(|l| {
        let l = l.trim();
        l.is_empty() || l.starts_with('#')
    })
}

/// The documents of a file. What stands before the first separator is a document only when
/// it holds something (a file need not start with `---`).
pub(super) fn split(text: &str) -> Vec<Document<'_>> {
    let mut chunks = Vec::new();
    let (mut start, mut start_line, mut offset) = (0usize, 1usize, 0usize);
    for (i, line) in text.split_inclusive('\n').enumerate() {
        if is_separator(line) {
            chunks.push((start_line, &text[start..offset]));
            start = offset + line.len();
            start_line = i + 2;
        }
        offset += line.len();
    }
    chunks.push((start_line, &text[start..]));
    let skip_first = chunks.len() > 1 && is_blank(chunks[0].1);
    chunks
        .into_iter()
        .skip(usize::from(skip_first))
        .enumerate()
        .map(|(i, (first_line, text))| Document {
            number: i + 1,
            first_line,
            text,
        })
        .collect()
}

/// What a (perhaps broken) document's text shows of its object: the top-level `kind:`, and
/// `name:` and `namespace:` under `metadata:` (block or flow style). `None` without a kind
/// and a name.
pub(super) fn identity(text: &str) -> Option<(String, Option<String>, String)> {
    let (mut kind, mut name, mut namespace) = (None, None, None);
    let mut in_metadata = false;
    let mut indent = None;
    for line in text.lines() {
        let content = line.trim_start();
        if content.is_empty() || content.starts_with('#') {
            continue;
        }
        let depth = line.len() - content.len();
        if depth == 0 {
            in_metadata = false;
            if let Some(v) = content.strip_prefix("kind:") {
                kind = scalar(v);
            } else if let Some(v) = content.strip_prefix("metadata:") {
                let v = v.trim();
                if let Some(flow) = v.strip_prefix('{') {
                    let flow = flow.split('}').next().unwrap_or_default();
                    for pair in flow.split(',') {
                        let (k, v) = pair.split_once(':').unwrap_or((pair, ""));
                        match k.trim() {
                            "name" => name = scalar(v),
                            "namespace" => namespace = scalar(v),
                            _ => {}
                        }
                    }
                } else {
                    in_metadata = true;
                    indent = None;
                }
            }
        } else if in_metadata && *indent.get_or_insert(depth) == depth {
            if let Some(v) = content.strip_prefix("name:") {
                name = scalar(v);
            } else if let Some(v) = content.strip_prefix("namespace:") {
                namespace = scalar(v);
            }
        }
    }
    Some((kind?, namespace, name?))
}

/// A plain or quoted scalar, without a trailing comment; `None` when empty.
fn scalar(v: &str) -> Option<String> {
    let v = v.trim();
    let v = match v.chars().next() {
        Some(q @ ('"' | '\'')) => v[1..].split(q).next().unwrap_or_default(),
        _ => v.split(" #").next().unwrap_or_default().trim(),
    };
    (!v.is_empty()).then(|| v.to_owned())
}
