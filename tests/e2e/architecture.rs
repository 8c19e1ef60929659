//! The architecture invariants that the crate graph or the source text can show
//! (ARCHITECTURE.md names each and points here): the dependency graph from
//! `cargo metadata` and `cargo tree`, the rules on text from the files themselves.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is inside the workspace")
        .to_path_buf()
}

/// cargo's output for `args`, run in the workspace; `--locked` so a check never
/// rewrites Cargo.lock.
fn cargo(args: &[&str]) -> String {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = Command::new(cargo)
        .args(args)
        .arg("--locked")
        .current_dir(root())
        .output()
        .expect("running cargo");
    assert!(
        out.status.success(),
        "cargo {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("cargo prints UTF-8")
}

/// A package and the features it is built with, in `package`'s normal dependency
/// tree with its default features (what a user of that crate alone compiles).
fn normal_tree(package: &str) -> BTreeMap<String, BTreeSet<String>> {
    let text = cargo(&[
        "tree", "-p", package, "-e", "normal", "--prefix", "none", "--format", "{p}|{f}",
    ]);
    let mut tree: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in text.lines() {
        let (package, features) = line.split_once('|').unwrap_or((line, ""));
        let name = package.split_whitespace().next().unwrap_or_default();
        let features = features.trim_end_matches(" (*)").split(',');
        tree.entry(name.to_owned())
            .or_default()
            .extend(features.filter(|f| !f.is_empty()).map(str::to_owned));
    }
    tree
}

/// Which of `forbidden` the normal tree of `package` contains.
fn forbidden_in(package: &str, forbidden: &[&str], rule: &str) -> Vec<String> {
    let tree = normal_tree(package);
    forbidden
        .iter()
        .filter(|name| tree.contains_key(**name))
        .map(|name| {
            format!("{package} depends on {name} (`cargo tree -p {package} -i {name}`): {rule}")
        })
        .collect()
}

fn assert_none(violations: Vec<String>) {
    assert!(
        violations.is_empty(),
        "architecture invariants broken (ARCHITECTURE.md):\n- {}",
        violations.join("\n- ")
    );
}

/// Dependencies one crate owns: (dependency, its owner, why). The test crates may
/// use any of them.
const OWNED: [(&str, &str, &str); 4] = [
    (
        "tokio-postgres",
        "hookrelay-store",
        "only hookrelay-store talks to Postgres",
    ),
    (
        "refinery",
        "hookrelay-store",
        "only hookrelay-store runs migrations",
    ),
    (
        "aes-gcm",
        "hookrelay-store",
        "the store's cipher seals secrets",
    ),
    (
        "prometheus-client",
        "hookrelay-metrics",
        "every metric lives in hookrelay-metrics",
    ),
];

#[test]
fn the_database_client_migrations_cipher_and_metrics_each_have_one_owner() {
    let metadata: serde_json::Value =
        serde_json::from_str(&cargo(&["metadata", "--format-version", "1", "--no-deps"]))
            .expect("cargo metadata is JSON");
    let mut violations = Vec::new();
    for package in metadata["packages"].as_array().expect("packages") {
        let name = package["name"].as_str().unwrap_or_default();
        if ["hookrelay-tests", "xtask"].contains(&name) {
            continue;
        }
        for dep in package["dependencies"].as_array().expect("dependencies") {
            let dep_name = dep["name"].as_str().unwrap_or_default();
            // A crate's own tests may look into the database; its code may not.
            if dep["kind"].as_str() == Some("dev") {
                continue;
            }
            for (owned, owner, rule) in OWNED {
                if dep_name == owned && name != owner {
                    violations.push(format!("{name} depends directly on {owned}: {rule}"));
                }
            }
        }
    }
    assert_none(violations);
}

#[test]
fn the_producer_library_pulls_in_no_database_secrets_metrics_or_http() {
    assert_none(forbidden_in(
        "hookrelay-producer",
        &[
            "hookrelay-store",
            "hookrelay-metrics",
            "tokio-postgres",
            "deadpool-postgres",
            "refinery",
            "aes-gcm",
            "prometheus-client",
            "axum",
        ],
        "a Rust upstream that only publishes gets model and amqp (ingest is a feature)",
    ));
}

#[test]
fn the_model_does_no_io() {
    let rule = "hookrelay-model is pure types and rules, no I/O";
    let mut violations = forbidden_in(
        "hookrelay-model",
        &[
            "lapin",
            "tokio-postgres",
            "deadpool-postgres",
            "refinery",
            "reqwest",
            "hyper",
            "hyper-util",
            "axum",
        ],
        rule,
    );
    let tree = normal_tree("hookrelay-model");
    let beyond_sync: Vec<&String> = tree
        .get("tokio")
        .into_iter()
        .flatten()
        .filter(|f| *f != "sync")
        .collect();
    if !beyond_sync.is_empty() {
        violations.push(format!(
            "hookrelay-model builds tokio with {beyond_sync:?}: {rule} (tokio only with `sync`)"
        ));
    }
    for name in tree.keys() {
        if name.starts_with("hookrelay-") && name != "hookrelay-model" {
            violations.push(format!(
                "hookrelay-model depends on {name}: the model is the bottom layer"
            ));
        }
    }
    assert_none(violations);
}

#[test]
fn the_router_has_no_http_client() {
    let rule = "the router never performs HTTP";
    let mut violations = forbidden_in("hookrelay-router", &["reqwest"], rule);
    let tree = normal_tree("hookrelay-router");
    for (name, client) in [("hyper", "client"), ("hyper-util", "client-legacy")] {
        if tree.get(name).is_some_and(|f| f.contains(client)) {
            violations.push(format!(
                "hookrelay-router builds {name} with `{client}`: {rule}"
            ));
        }
    }
    assert_none(violations);
}

/// Migrations are `V{n}__{name}.sql`, `n` from 1 without gaps or repeats: refinery
/// checks at run time that applied ones are unchanged, this that none went missing.
/// The sender's decisions (admission before a request, the verdict after it) are
/// pure: they name no I/O crate, use no other module of the sender, and wait on
/// nothing, so every rule in them is a unit test away.
#[test]
fn the_sender_decides_without_io() {
    const IO: [&str; 9] = [
        "tokio",
        "lapin",
        "deadpool_postgres",
        "tokio_postgres",
        "reqwest",
        "hyper",
        "hookrelay_store",
        "hookrelay_amqp",
        "hookrelay_metrics",
    ];
    let src = root().join("crates/sender/src");
    let mut violations = Vec::new();
    for module in ["admission", "verdict"] {
        let file = src.join(format!("{module}.rs"));
        let source = Source::read(&file);
        let code: String = source.code.iter().collect();
        let words: BTreeSet<&str> = code
            .split(|c: char| !(c.is_alphanumeric() || c == '_'))
            .collect();
        for io in IO.iter().filter(|io| words.contains(*io)) {
            violations.push(format!(
                "crates/sender/src/{module}.rs names `{io}`: decisions do no I/O"
            ));
        }
        for word in ["async", "await"].iter().filter(|w| words.contains(*w)) {
            violations.push(format!(
                "crates/sender/src/{module}.rs has `{word}`: decisions wait on nothing"
            ));
        }
        for used in source.crate_paths() {
            violations.push(format!(
                "crates/sender/src/{module}.rs uses crate::{used}: decisions stand below the sender's I/O"
            ));
        }
    }
    assert_none(violations);
}

#[test]
fn migrations_are_numbered_from_one_without_gaps() {
    let dir = root().join("crates/store/migrations");
    let mut versions: BTreeMap<u32, Vec<String>> = BTreeMap::new();
    let mut violations = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("crates/store/migrations") {
        let name = entry
            .expect("entry")
            .file_name()
            .to_string_lossy()
            .into_owned();
        let version = name
            .strip_prefix('V')
            .and_then(|rest| rest.split_once("__"))
            .filter(|(_, title)| {
                title.strip_suffix(".sql").is_some_and(|t| {
                    !t.is_empty()
                        && t.chars()
                            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
                })
            })
            .and_then(|(n, _)| n.parse::<u32>().ok());
        match version {
            Some(n) => versions.entry(n).or_default().push(name),
            None => violations.push(format!(
                "crates/store/migrations/{name} is not named V{{n}}__{{lowercase_words}}.sql"
            )),
        }
    }
    for (n, names) in &versions {
        if names.len() > 1 {
            violations.push(format!("migration version {n} is taken by {names:?}"));
        }
    }
    for (expected, n) in (1..).zip(versions.keys()) {
        if *n != expected {
            violations.push(format!(
                "migration V{expected} is missing (the next is V{n}): versions run from 1 on"
            ));
            break;
        }
    }
    assert!(!versions.is_empty(), "no migrations in {}", dir.display());
    assert_none(violations);
}

#[test]
fn no_crate_but_the_store_contains_sql() {
    let mut violations = Vec::new();
    for (crate_dir, file) in crate_sources() {
        if crate_dir.ends_with("store") {
            continue;
        }
        let source = Source::read(&file);
        for (line, text) in source.literals() {
            if let Some(keyword) = sql_keyword(text) {
                violations.push(format!(
                    "{}:{line} has SQL ({keyword} …) in a string: only hookrelay-store contains SQL",
                    relative(&file)
                ));
            }
        }
    }
    assert_none(violations);
}

/// Circles there were when this check came, each as its crate folder and modules,
/// sorted. Untangling one means deleting it here; a new one fails.
const KNOWN_CIRCLES: [(&str, &[&str]); 0] = [];

#[test]
fn the_modules_of_a_crate_use_each_other_without_circles() {
    // Each crate's modules with their sources; the root (lib.rs, main.rs) is one of
    // them: pages that reach the root for shared state while the root names every
    // page form a circle as real as any other.
    let mut sources: BTreeMap<String, Vec<(String, Source)>> = BTreeMap::new();
    for (crate_dir, file) in crate_sources() {
        let krate = crate_dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let within = file.strip_prefix(crate_dir.join("src")).unwrap_or(&file);
        let module = top_module(within).unwrap_or_else(|| ROOT.to_owned());
        sources
            .entry(krate)
            .or_default()
            .push((module, Source::read(&file)));
    }
    let mut graphs: BTreeMap<String, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    for (krate, files) in &sources {
        let modules: BTreeSet<&str> = files.iter().map(|(m, _)| m.as_str()).collect();
        // `pub use page::Section;` in the root: `crate::Section` is the page's.
        let reexported: BTreeMap<String, String> = files
            .iter()
            .filter(|(m, _)| m == ROOT)
            .flat_map(|(_, root)| root.reexports(&modules))
            .collect();
        let graph = graphs.entry(krate.clone()).or_default();
        for (module, source) in files {
            let mut uses: BTreeSet<String> = source
                .crate_paths()
                .into_iter()
                // `crate::Item` that is no module is the root's, or re-exported by it.
                .map(|used| match modules.contains(used.as_str()) {
                    true => used,
                    false => reexported
                        .get(&used)
                        .cloned()
                        .unwrap_or_else(|| ROOT.to_owned()),
                })
                .collect();
            if module == ROOT {
                uses.extend(source.relative_paths(&modules));
            }
            uses.remove(module);
            graph.entry(module.clone()).or_default().extend(uses);
        }
    }
    let mut found: BTreeSet<(String, Vec<String>)> = BTreeSet::new();
    for (krate, graph) in &graphs {
        for circle in circles(graph) {
            found.insert((krate.clone(), circle));
        }
    }
    let known: BTreeSet<(String, Vec<String>)> = KNOWN_CIRCLES
        .iter()
        .map(|(k, m)| ((*k).to_owned(), m.iter().map(|m| (*m).to_owned()).collect()))
        .collect();
    let mut violations: Vec<String> = found
        .difference(&known)
        .map(|(krate, circle)| {
            format!(
                "crates/{krate}: modules {} use each other in a circle: let one use the \
                 other, or move what both need below them",
                circle.join(" ↔ ")
            )
        })
        .collect();
    violations.extend(known.difference(&found).map(|(krate, circle)| {
        format!(
            "crates/{krate}: {} no longer form a circle: delete it from KNOWN_CIRCLES",
            circle.join(" ↔ ")
        )
    }));
    assert_none(violations);
}

/// The name the circle check gives a crate's root (`lib.rs`, `main.rs`).
const ROOT: &str = "(crate root)";

/// The crate's top-level module a file under `src/` belongs to; none for the root
/// (`lib.rs`, `main.rs`), which declares and re-exports them all.
fn top_module(within_src: &Path) -> Option<String> {
    let first = within_src
        .components()
        .next()?
        .as_os_str()
        .to_string_lossy();
    let name = first.strip_suffix(".rs").unwrap_or(&first);
    (!matches!(name, "lib" | "main")).then(|| name.to_owned())
}

/// Groups of modules that reach each other through their uses (each sorted).
fn circles(graph: &BTreeMap<String, BTreeSet<String>>) -> BTreeSet<Vec<String>> {
    let reach = |from: &String| {
        let mut seen = BTreeSet::new();
        let mut pending = vec![from];
        while let Some(module) = pending.pop() {
            for next in graph.get(module).into_iter().flatten() {
                if graph.contains_key(next) && seen.insert(next) {
                    pending.push(next);
                }
            }
        }
        seen
    };
    let reached: BTreeMap<&String, BTreeSet<&String>> =
        graph.keys().map(|m| (m, reach(m))).collect();
    graph
        .keys()
        .filter_map(|m| {
            let circle: Vec<String> = reached[m]
                .iter()
                .filter(|other| reached[*other].contains(m))
                .map(|other| (*other).clone())
                .collect();
            // A module reaching itself through others is in a circle with them.
            (circle.len() > 1).then_some(circle)
        })
        .collect()
}

/// Every `.rs` file under `crates/*/src`, with its crate's folder.
fn crate_sources() -> Vec<(PathBuf, PathBuf)> {
    let mut out = Vec::new();
    let crates = std::fs::read_dir(root().join("crates")).expect("crates/");
    for krate in crates.map(|e| e.expect("entry").path()) {
        let mut pending = vec![krate.join("src")];
        while let Some(dir) = pending.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for path in entries.map(|e| e.expect("entry").path()) {
                if path.is_dir() {
                    pending.push(path);
                } else if path.extension().is_some_and(|e| e == "rs") {
                    out.push((krate.clone(), path));
                }
            }
        }
    }
    out.sort();
    out
}

fn relative(file: &Path) -> String {
    file.strip_prefix(root())
        .unwrap_or(file)
        .display()
        .to_string()
}

/// The statement a string literal starts or contains, as SQL is written here
/// (keywords in capitals): `SELECT`, `INSERT INTO`, `UPDATE t SET`, `DELETE FROM`,
/// `CREATE`/`DROP`/`ALTER` of a schema object. Prose ("delete the webhook from…",
/// "Update the URL") has neither the capitals nor the shape.
fn sql_keyword(text: &str) -> Option<&'static str> {
    const OBJECTS: [&str; 9] = [
        "TABLE",
        "INDEX",
        "UNIQUE",
        "DATABASE",
        "SCHEMA",
        "EXTENSION",
        "TYPE",
        "VIEW",
        "FUNCTION",
    ];
    let words: Vec<&str> = text
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| !w.is_empty())
        .collect();
    let next = |i: usize, offset: usize| words.get(i + offset).copied().unwrap_or_default();
    words.iter().enumerate().find_map(|(i, word)| match *word {
        "SELECT" if !next(i, 1).is_empty() => Some("SELECT"),
        "INSERT" if next(i, 1) == "INTO" => Some("INSERT INTO"),
        "UPDATE" if next(i, 2) == "SET" => Some("UPDATE … SET"),
        "DELETE" if next(i, 1) == "FROM" => Some("DELETE FROM"),
        "CREATE" if OBJECTS.contains(&next(i, 1)) => Some("CREATE"),
        "DROP" if OBJECTS.contains(&next(i, 1)) => Some("DROP"),
        "ALTER" if next(i, 1) == "TABLE" => Some("ALTER TABLE"),
        _ => None,
    })
}

/// A Rust file with comments, string and char literals blanked out of `code` (same
/// length, so positions and lines hold) and the strings kept aside, each with its
/// offset in `code`; items under `#[cfg(test)]` are not the crate's code and are
/// left out of both.
struct Source {
    code: Vec<char>,
    strings: Vec<(usize, String)>,
}

impl Source {
    fn read(file: &Path) -> Self {
        let text = std::fs::read_to_string(file).expect("source file");
        let mut source = Self::lex(&text);
        source.drop_test_items();
        source
    }

    fn lex(text: &str) -> Self {
        let chars: Vec<char> = text.chars().collect();
        let mut code = chars.clone();
        let mut strings = Vec::new();
        let at = |i: usize| chars.get(i).copied().unwrap_or('\0');
        let ident = |c: char| c.is_alphanumeric() || c == '_';
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            let starts_token = i == 0 || !ident(chars[i - 1]);
            if c == '/' && at(i + 1) == '/' {
                let end = (i..chars.len())
                    .find(|&j| chars[j] == '\n')
                    .unwrap_or(chars.len());
                blank(&mut code, i, end);
                i = end;
            } else if c == '/' && at(i + 1) == '*' {
                let (mut depth, mut j) = (1, i + 2);
                while j < chars.len() && depth > 0 {
                    if at(j) == '/' && at(j + 1) == '*' {
                        depth += 1;
                        j += 2;
                    } else if at(j) == '*' && at(j + 1) == '/' {
                        depth -= 1;
                        j += 2;
                    } else {
                        j += 1;
                    }
                }
                blank(&mut code, i, j);
                i = j;
            } else if starts_token
                && (c == 'r' || (c == 'b' && at(i + 1) == 'r'))
                && matches!(at(i + 1 + usize::from(c == 'b')), '"' | '#')
            {
                // r"…", r#"…"#, br"…": no escapes, ends at a quote and as many #.
                let mut j = i + 1 + usize::from(c == 'b');
                let hashes = (j..chars.len()).take_while(|&k| chars[k] == '#').count();
                j += hashes;
                if at(j) != '"' {
                    i += 1;
                    continue;
                }
                let start = j + 1;
                let closing = (start..chars.len())
                    .find(|&k| chars[k] == '"' && (1..=hashes).all(|h| at(k + h) == '#'))
                    .unwrap_or(chars.len());
                strings.push((i, chars[start..closing].iter().collect()));
                let end = closing + 1 + hashes;
                blank(&mut code, i, end);
                i = end;
            } else if c == '"' {
                let mut j = i + 1;
                let mut content = String::new();
                while j < chars.len() && chars[j] != '"' {
                    if chars[j] == '\\' {
                        // An escape reads as a word break, which is all SQL
                        // detection needs.
                        content.push(' ');
                        j += 2;
                    } else {
                        content.push(chars[j]);
                        j += 1;
                    }
                }
                strings.push((i, content));
                blank(&mut code, i, j + 1);
                i = j + 1;
            } else if c == '\'' {
                // A char literal ('x', '\n', '\u{1F600}'); otherwise a lifetime.
                let end = if at(i + 1) == '\\' {
                    (i + 3..chars.len()).find(|&k| chars[k] == '\'')
                } else if at(i + 2) == '\'' {
                    Some(i + 2)
                } else {
                    None
                };
                match end {
                    Some(end) => {
                        blank(&mut code, i, end + 1);
                        i = end + 1;
                    }
                    None => i += 1,
                }
            } else {
                i += 1;
            }
        }
        Self { code, strings }
    }

    /// Blanks each item that follows `#[cfg(test)]`: up to its `;`, or through its
    /// `{ … }`.
    fn drop_test_items(&mut self) {
        let attribute: Vec<char> = "#[cfg(test)]".chars().collect();
        let mut i = 0;
        while i + attribute.len() <= self.code.len() {
            if self.code[i..i + attribute.len()] != attribute[..] {
                i += 1;
                continue;
            }
            let mut j = i + attribute.len();
            while j < self.code.len() && !matches!(self.code[j], '{' | ';') {
                j += 1;
            }
            if self.code.get(j) == Some(&'{') {
                let mut depth = 0;
                while j < self.code.len() {
                    match self.code[j] {
                        '{' => depth += 1,
                        '}' => depth -= 1,
                        _ => {}
                    }
                    j += 1;
                    if depth == 0 {
                        break;
                    }
                }
            } else {
                j += 1;
            }
            self.strings.retain(|(at, _)| *at < i || *at >= j);
            blank(&mut self.code, i, j);
            i = j;
        }
    }

    /// The first segment of every `crate::…` path in the code, `use crate::{a, b::c}`
    /// giving `a` and `b`.
    fn crate_paths(&self) -> BTreeSet<String> {
        let code: String = self.code.iter().collect();
        let ident = |c: char| c.is_alphanumeric() || c == '_';
        let mut found = BTreeSet::new();
        for (at, _) in code.match_indices("crate::") {
            if code[..at].chars().next_back().is_some_and(ident) {
                continue;
            }
            let rest = code[at + "crate::".len()..].trim_start();
            if let Some(group) = rest.strip_prefix('{') {
                let mut depth = 0;
                let mut entry_start = true;
                for (i, c) in group.char_indices() {
                    match c {
                        '{' => depth += 1,
                        '}' if depth == 0 => break,
                        '}' => depth -= 1,
                        ',' if depth == 0 => entry_start = true,
                        c if entry_start && ident(c) => {
                            let name: String =
                                group[i..].chars().take_while(|c| ident(*c)).collect();
                            found.insert(name);
                            entry_start = false;
                        }
                        c if !c.is_whitespace() => entry_start = false,
                        _ => {}
                    }
                }
            } else {
                let name: String = rest.chars().take_while(|c| ident(*c)).collect();
                if !name.is_empty() {
                    found.insert(name);
                }
            }
        }
        found
    }

    /// The code without its `use` items: what the root does itself, not what it
    /// only re-exports.
    fn code_without_uses(&self) -> String {
        let code: String = self.code.iter().collect();
        let mut out = String::new();
        let mut rest = code.as_str();
        while let Some(at) = rest.find("use ") {
            let starts = rest[..at]
                .chars()
                .next_back()
                .is_none_or(|c| !(c.is_alphanumeric() || c == '_'));
            out.push_str(&rest[..at]);
            rest = &rest[at..];
            if starts {
                let end = rest.find(';').map_or(rest.len(), |e| e + 1);
                rest = &rest[end..];
            } else {
                out.push_str("use ");
                rest = &rest["use ".len()..];
            }
        }
        out.push_str(rest);
        out
    }

    /// The names a root re-exports from its modules (`pub use page::{A, B};`), each
    /// with its module.
    fn reexports(&self, modules: &BTreeSet<&str>) -> Vec<(String, String)> {
        let code: String = self.code.iter().collect();
        let ident = |c: char| c.is_alphanumeric() || c == '_';
        let mut out = Vec::new();
        for (at, _) in code.match_indices("pub use ") {
            let item = &code[at + "pub use ".len()..];
            let item = &item[..item.find(';').unwrap_or(item.len())];
            let module: String = item.trim().chars().take_while(|c| ident(*c)).collect();
            if !modules.contains(module.as_str()) {
                continue;
            }
            let names = item.rsplit(['{', ':']).next().unwrap_or_default();
            for name in names.split([',', '}']) {
                let name = name.split(" as ").last().unwrap_or(name).trim();
                if !name.is_empty() {
                    out.push((name.to_owned(), module.clone()));
                }
            }
        }
        out
    }

    /// Which of `modules` the code names by a relative path outside `use` items
    /// (`page::render(...)`): how a crate root uses the modules it declares.
    fn relative_paths(&self, modules: &BTreeSet<&str>) -> BTreeSet<String> {
        let code = self.code_without_uses();
        let ident = |c: char| c.is_alphanumeric() || c == '_';
        let mut found = BTreeSet::new();
        for module in modules {
            let path = format!("{module}::");
            let named = code.match_indices(&path).any(|(at, _)| {
                let before = code[..at]
                    .trim_end_matches(|c: char| c == '{' || c == ',' || c.is_whitespace());
                !code[..at].chars().next_back().is_some_and(ident)
                    && !before.ends_with("::")
                    && !before.ends_with("crate")
            });
            if named {
                found.insert((*module).to_owned());
            }
        }
        found
    }

    /// The string literals with their line numbers.
    fn literals(&self) -> impl Iterator<Item = (usize, &str)> {
        self.strings.iter().map(|(at, text)| {
            let line = 1 + self.code[..*at].iter().filter(|c| **c == '\n').count();
            (line, text.as_str())
        })
    }
}

/// Spaces over `code[from..to]`, keeping line breaks so line numbers hold.
fn blank(code: &mut [char], from: usize, to: usize) {
    let to = to.min(code.len());
    for c in &mut code[from.min(to)..to] {
        if *c != '\n' {
            *c = ' ';
        }
    }
}

#[test]
fn crate_paths_and_circles_are_found() {
    let source = Source::lex(
        "use crate::a::X;\nuse crate::{b, c::{D, E}, self as me};\n\
         fn f() { crate::d::g(); my_crate::e(); }\n",
    );
    let paths: Vec<String> = source.crate_paths().into_iter().collect();
    assert_eq!(paths, ["a", "b", "c", "d", "self"]);
    let graph: BTreeMap<String, BTreeSet<String>> = [
        ("a", &["b"][..]),
        ("b", &["c"]),
        ("c", &["a", "Item"]),
        ("d", &["a"]),
    ]
    .into_iter()
    .map(|(m, uses)| (m.to_owned(), uses.iter().map(|u| (*u).to_owned()).collect()))
    .collect();
    let expected: BTreeSet<Vec<String>> = [vec!["a".to_owned(), "b".into(), "c".into()]].into();
    assert_eq!(circles(&graph), expected);
}

#[test]
fn sql_is_told_apart_from_prose() {
    for sql in [
        "SELECT 1",
        "SELECT id FROM events WHERE tenant = $1",
        "INSERT INTO deliveries (id) VALUES ($1)",
        "UPDATE webhooks SET disabled_at = now()",
        "DELETE FROM events WHERE id = ANY($1)",
        "CREATE DATABASE t_1 TEMPLATE t",
        "CREATE UNIQUE INDEX x ON y (z)",
        "ALTER TABLE webhooks ADD COLUMN x text",
        "  SELECT\n    count(*)",
    ] {
        assert!(sql_keyword(sql).is_some(), "{sql:?} is SQL");
    }
    for prose in [
        "select the webhooks from the list",
        "delete from the queue",
        "Update the URL to set it",
        "CREATE",
        "the database refused to CREATE it",
        "SELECT",
        "DELETE the webhook",
    ] {
        assert!(sql_keyword(prose).is_none(), "{prose:?} is prose");
    }
}

#[test]
fn test_items_comments_and_chars_are_not_code() {
    let mut source = Source::lex(concat!(
        "// \"SELECT 1\" in a comment\n",
        "/* \"SELECT 2\" /* nested */ */\n",
        "fn f<'a>(x: &'a str) -> char { let _ = r#\"SELECT \"3\"\"#; '{'; '\\'' }\n",
        "#[cfg(test)]\n",
        "mod tests { fn g() { let _ = \"SELECT 4\"; let _ = '}'; } }\n",
        "const AFTER: &str = \"UPDATE t SET x = 1\";\n",
    ));
    source.drop_test_items();
    let found: Vec<(usize, &str)> = source.literals().collect();
    assert_eq!(
        found,
        vec![(3, "SELECT \"3\""), (6, "UPDATE t SET x = 1")],
        "{found:?}"
    );
}
