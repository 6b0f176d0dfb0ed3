//! The control plane's layers hold (docs/design.md §9): read from the source, so `cargo test`
//! fails the moment a forbidden `use` or an outsized file lands.
//!
//! - `domain` imports nothing else of the crate;
//! - `app` never imports an adapter (`http`, `ng`: the NG adapter, docs/ng.md);
//! - `http` and `ng` (the adapters) never import `store`;
//! - no import cycle between the layer folders (`domain`, `app`, `http`, `ng`, `store`);
//! - no file under `controlplane/src` has more than [`CODE_LINES_MAX`] lines of non-test code.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The layer folders of `controlplane/src`.
const LAYERS: [&str; 5] = ["domain", "app", "http", "ng", "store"];

/// What a layer may not import: (layer, forbidden module of the crate, why).
const FORBIDDEN: [(&str, &str, &str); 5] = [
    ("app", "http", "app knows no HTTP"),
    ("app", "ng", "app knows no NG"),
    ("http", "store", "http reaches the store only through app"),
    ("ng", "store", "ng reaches the store only through app"),
    ("domain", "*", "domain imports nothing else of the crate"),
];

/// Lines of code (not blank, not comment) a source file may have outside its tests.
const CODE_LINES_MAX: usize = 800;

/// A source file: its path under `src/` (`app/calls.rs`) and its text.
struct Source {
    path: String,
    text: String,
}

fn sources() -> Vec<Source> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    walk(&root, &mut files);
    files.sort();
    files
        .into_iter()
        .map(|f| Source {
            path: f
                .strip_prefix(&root)
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/"),
            text: std::fs::read_to_string(&f).unwrap(),
        })
        .collect()
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            walk(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The text with comments and string/char literals blanked, so a path quoted in a doc comment
/// or a message is not an import.
fn code_only(src: &str) -> String {
    let b = src.as_bytes();
    let mut out = String::with_capacity(src.len());
    let mut i = 0;
    while i < b.len() {
        if b[i..].starts_with(b"//") {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if b[i..].starts_with(b"/*") {
            let mut depth = 0;
            while i < b.len() {
                if b[i..].starts_with(b"/*") {
                    depth += 1;
                    i += 2;
                } else if b[i..].starts_with(b"*/") {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    if b[i] == b'\n' {
                        out.push('\n');
                    }
                    i += 1;
                }
            }
        } else if b[i] == b'r' && (b.get(i + 1) == Some(&b'#') || b.get(i + 1) == Some(&b'"')) {
            // A raw string r#"…"#: skip to its closing quote and hashes.
            let mut j = i + 1;
            let mut hashes = 0;
            while b.get(j) == Some(&b'#') {
                hashes += 1;
                j += 1;
            }
            if b.get(j) != Some(&b'"') {
                out.push('r');
                i += 1;
                continue;
            }
            let close: Vec<u8> = std::iter::once(b'"')
                .chain(std::iter::repeat_n(b'#', hashes))
                .collect();
            j += 1;
            while j < b.len() && !b[j..].starts_with(&close) {
                if b[j] == b'\n' {
                    out.push('\n');
                }
                j += 1;
            }
            out.push_str("\"\"");
            i = j + close.len();
        } else if b[i] == b'"' {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                if b[i] == b'\n' {
                    out.push('\n');
                }
                i += if b[i] == b'\\' { 2 } else { 1 };
            }
            out.push_str("\"\"");
            i += 1;
        } else if b[i] == b'\'' && b.get(i + 2) == Some(&b'\'') {
            out.push_str("' '");
            i += 3;
        } else if b[i] == b'\'' && b.get(i + 1) == Some(&b'\\') {
            // An escaped char literal ('\n', '\'', '\u{..}').
            let mut j = i + 2;
            while j < b.len() && b[j] != b'\'' {
                j += 1;
            }
            out.push_str("' '");
            i = j + 1;
        } else {
            let ch = src[i..].chars().next().unwrap();
            out.push(ch);
            i += ch.len_utf8();
        }
    }
    out
}

/// The crate's top-level modules a source names: every `crate::x`, including those inside
/// `crate::{x, y::z}` groups.
fn crate_modules(code: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        let before = rest[..at].chars().next_back();
        rest = &rest[at + "crate::".len()..];
        if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$') {
            continue; // `$crate::` or part of another identifier
        }
        let rest_trim = rest.trim_start();
        if let Some(group) = rest_trim.strip_prefix('{') {
            // Top-level names of the group, up to its closing brace.
            let mut depth = 0;
            let mut start = true;
            for (k, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => start = true,
                    c if c.is_whitespace() => {}
                    _ if start && depth == 0 => {
                        start = false;
                        let name = ident(&group[k..]);
                        if !name.is_empty() && name != "self" {
                            out.insert(name);
                        }
                    }
                    _ => {}
                }
            }
        } else {
            let name = ident(rest_trim);
            if !name.is_empty() {
                out.insert(name);
            }
        }
    }
    out
}

/// The layer folder a source file lives in, if any.
fn layer_of(path: &str) -> Option<&'static str> {
    let first = path.split('/').next()?;
    LAYERS
        .iter()
        .copied()
        .find(|l| first == *l || first == format!("{l}.rs"))
}

/// Every broken rule among `sources`, as readable lines.
fn violations(sources: &[Source]) -> Vec<String> {
    let mut out = Vec::new();
    let mut edges: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for s in sources {
        let Some(layer) = layer_of(&s.path) else {
            continue;
        };
        for module in crate_modules(&code_only(&s.text)) {
            if let Some(target) = LAYERS.iter().copied().find(|l| *l == module)
                && target != layer
            {
                edges.entry(layer).or_default().insert(target);
            }
            for (from, forbidden, why) in FORBIDDEN {
                if from == layer && (forbidden == module || (forbidden == "*" && module != layer)) {
                    out.push(format!("{}: imports crate::{module} ({why})", s.path));
                }
            }
        }
    }
    // A cycle between layers: a layer that reaches itself.
    let cyclic: Vec<&str> = LAYERS
        .into_iter()
        .filter(|start| {
            let mut seen = BTreeSet::new();
            let mut todo: Vec<&str> = edges.get(start).into_iter().flatten().copied().collect();
            while let Some(l) = todo.pop() {
                if l == *start {
                    return true;
                }
                if seen.insert(l) {
                    todo.extend(edges.get(l).into_iter().flatten().copied());
                }
            }
            false
        })
        .collect();
    if !cyclic.is_empty() {
        out.push(format!("import cycle through {cyclic:?}: {edges:?}"));
    }
    out
}

/// Lines of code (not blank, not comment) outside the file's test modules: a
/// `#[cfg(test)] mod …` block or file, and files that are all tests (`tests.rs`,
/// `*_tests.rs`).
fn code_lines(s: &Source) -> usize {
    let name = s.path.rsplit('/').next().unwrap_or_default();
    if name == "tests.rs" || name.ends_with("_tests.rs") || s.path.contains("/tests/") {
        return 0;
    }
    let code = code_only(&s.text);
    let lines: Vec<&str> = code
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let mut count = 0;
    let mut i = 0;
    while i < lines.len() {
        let is_test_mod = lines[i] == "#[cfg(test)]"
            && lines.get(i + 1).is_some_and(|next| {
                let next = next
                    .trim_start_matches("pub(crate) ")
                    .trim_start_matches("pub ");
                next.starts_with("mod ") || next.starts_with("#[path")
            });
        if !is_test_mod {
            count += 1;
            i += 1;
            continue;
        }
        // Skip the attribute(s) and the module: to its `;`, or to its balanced closing brace.
        let mut depth = 0i32;
        i += 1;
        while i < lines.len() {
            let line = lines[i];
            depth += line.matches('{').count() as i32 - line.matches('}').count() as i32;
            i += 1;
            if depth <= 0 && (line.ends_with(';') || line.ends_with('}')) {
                break;
            }
        }
    }
    count
}

#[test]
fn the_layers_import_only_downwards() {
    let sources = sources();
    assert!(
        sources
            .iter()
            .filter(|s| layer_of(&s.path).is_some())
            .count()
            > 20,
        "the layer folders were not found"
    );
    let broken = violations(&sources);
    assert!(
        broken.is_empty(),
        "layer rules broken:\n{}",
        broken.join("\n")
    );
}

#[test]
fn no_source_file_outgrows_its_concern() {
    let big: Vec<String> = sources()
        .iter()
        .map(|s| (s.path.clone(), code_lines(s)))
        .filter(|(_, n)| *n > CODE_LINES_MAX)
        .map(|(p, n)| format!("{p}: {n} lines of code"))
        .collect();
    assert!(
        big.is_empty(),
        "split these by concern:\n{}",
        big.join("\n")
    );
}

fn source(path: &str, text: &str) -> Source {
    Source {
        path: path.to_owned(),
        text: text.to_owned(),
    }
}

#[test]
fn a_forbidden_use_is_caught_in_every_form() {
    let clean = [
        source(
            "domain/ids.rs",
            "use crate::domain::call::Party;\nuse std::fmt;",
        ),
        source(
            "app/calls.rs",
            "use crate::{domain::ids::CallId, store::Store};",
        ),
        source(
            "http/calls.rs",
            "use crate::app::calls;\n/// See [`crate::store::Store`].\n",
        ),
        source("store/mod.rs", "use crate::domain::ids::CallId;"),
        source("ng/commands.rs", "use crate::app::state::AppState;"),
        source("daemon.rs", "use crate::{http, store};"),
    ];
    assert_eq!(violations(&clean), Vec::<String>::new());

    let forbidden = [
        ("app/calls.rs", "use crate::http::views::CallView;"),
        (
            "app/calls.rs",
            "use crate::{\n    domain::ids::CallId,\n    http::error::ApiError,\n};",
        ),
        (
            "app/calls.rs",
            "fn f() -> crate::http::error::ApiError { todo!() }",
        ),
        ("http/calls.rs", "use crate::store::Store;"),
        ("http/calls.rs", "let r: crate::store::CallRecord;"),
        ("ng/commands.rs", "use crate::store::Store;"),
        ("app/calls.rs", "use crate::ng::message::Request;"),
        ("app/anchors.rs", "use crate::ng::sdp::Audio;"),
        ("domain/ids.rs", "use crate::app::state::AppState;"),
        ("domain/lifecycle/session.rs", "use crate::config::Config;"),
    ];
    for (path, text) in forbidden {
        let broken = violations(&[source(path, text)]);
        assert_eq!(broken.len(), 1, "{path}: {text:?} gave {broken:?}");
    }
}

#[test]
fn a_cycle_between_layers_is_caught() {
    let cycle = [
        source("store/mod.rs", "use crate::app::records::Records;"),
        source("app/calls.rs", "use crate::store::Store;"),
    ];
    let broken = violations(&cycle);
    assert!(
        broken.iter().any(|b| b.starts_with("import cycle")),
        "{broken:?}"
    );
}

#[test]
fn test_code_and_comments_do_not_count_as_code() {
    let text = format!(
        "//! doc\nfn a() {{}}\n\n// note\nfn b() {{}}\n#[cfg(test)]\nmod tests {{\n{}}}\n",
        "    fn t() {}\n".repeat(900)
    );
    assert_eq!(code_lines(&source("app/x.rs", &text)), 2);
    let with_file = "fn a() {}\n#[cfg(test)]\nmod tests;\nfn b() {}\n";
    assert_eq!(code_lines(&source("app/x.rs", with_file)), 2);
    let test_helper = "#[cfg(test)]\nfn helper() {}\nfn b() {}\n";
    assert_eq!(code_lines(&source("app/x.rs", test_helper)), 3);
    assert_eq!(
        code_lines(&source("app/x/tests.rs", &"fn t() {}\n".repeat(900))),
        0
    );
    let big = "fn f() {}\n".repeat(CODE_LINES_MAX + 1);
    assert_eq!(code_lines(&source("app/x.rs", &big)), CODE_LINES_MAX + 1);
}
