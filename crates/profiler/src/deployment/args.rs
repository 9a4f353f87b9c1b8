//! Worker command lines as Dynamo's profiler edits them: a container's
//! `command`/`args` are flattened into words, flags are set, replaced or
//! removed in place, new flags go before any shell redirection or pipe (so
//! `... 2>&1 | tee log` keeps working), and a `sh -c "<script>"` container is
//! written back as one script string.

use serde_json::Value;

/// Words that end the engine's own command line inside a shell script.
/// Flags appended after them would belong to `tee` or the next command.
const SHELL_STOPS: [&str; 7] = ["|", "||", "&&", ";", "2>&1", ">", ">>"];

/// Splits a POSIX-shell-like string into words (quotes and backslashes as
/// `sh` reads them; no expansion). Errors on an unterminated quote.
pub(crate) fn shell_split(s: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(ch) => cur.push(ch),
                        None => return Err(format!("unterminated single quote in `{s}`")),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(ch @ ('\\' | '"' | '$' | '`')) => cur.push(ch),
                            Some('\n') => {}
                            Some(ch) => {
                                cur.push('\\');
                                cur.push(ch);
                            }
                            None => return Err(format!("unterminated double quote in `{s}`")),
                        },
                        Some(ch) => cur.push(ch),
                        None => return Err(format!("unterminated double quote in `{s}`")),
                    }
                }
            }
            '\\' => {
                in_word = true;
                match chars.next() {
                    Some('\n') | None => {}
                    Some(ch) => cur.push(ch),
                }
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    Ok(words)
}

/// Quotes one word for `sh` only when it needs it, like Python's
/// `shlex.quote`, so generated scripts stay readable.
pub fn shell_quote(word: &str) -> String {
    let safe = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "@%+=:,./-_".contains(c));
    if safe || SHELL_STOPS.contains(&word) {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r#"'"'"'"#))
    }
}

/// Joins words into one `sh` command line; pipes and redirections stay
/// unquoted so a script keeps its meaning.
pub fn shell_join<S: AsRef<str>>(words: &[S]) -> String {
    words
        .iter()
        .map(|w| shell_quote(w.as_ref()))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A container's command line in editable form.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct CommandLine {
    pub words: Vec<String>,
    /// `command: [sh, -c]` with one script string in `args`.
    pub shell_form: bool,
}

fn strings(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|i| match i {
                Value::String(s) => Some(s.clone()),
                Value::Null => None,
                other => Some(other.to_string()),
            })
            .collect(),
        Some(Value::String(s)) => vec![s.clone()],
        _ => Vec::new(),
    }
}

impl CommandLine {
    /// Reads `args` of a container. Elements holding several words are split
    /// (Dynamo's templates mix both styles); JSON values such as
    /// `--override-engine-args '{...}'` stay whole.
    pub fn from_container(container: &serde_json::Map<String, Value>) -> Self {
        let command = strings(container.get("command"));
        let args = strings(container.get("args"));
        let shell_form = command.len() >= 2
            && matches!(command[0].as_str(), "sh" | "/bin/sh" | "bash" | "/bin/bash")
            && command[1] == "-c"
            && args.len() == 1;
        let mut words = Vec::new();
        for a in args {
            let t = a.trim_start();
            let splittable =
                a.chars().any(char::is_whitespace) && !t.starts_with('{') && !t.starts_with('[');
            match splittable.then(|| shell_split(&a)) {
                Some(Ok(parts)) => words.extend(parts),
                _ => words.push(a),
            }
        }
        CommandLine { words, shell_form }
    }

    /// The value to store back into the container's `args`.
    pub fn to_args_value(&self) -> Value {
        if self.shell_form {
            Value::Array(vec![Value::String(shell_join(&self.words))])
        } else {
            Value::Array(self.words.iter().cloned().map(Value::String).collect())
        }
    }
}

/// Where a new flag goes: before the first shell pipe or redirection.
fn insert_at(words: &[String]) -> usize {
    words
        .iter()
        .position(|w| SHELL_STOPS.contains(&w.as_str()))
        .unwrap_or(words.len())
}

/// Index of `flag` as `--flag value` (false) or `--flag=value` (true).
fn find(words: &[String], flag: &str) -> Option<(usize, bool)> {
    let end = insert_at(words);
    words[..end].iter().enumerate().find_map(|(i, w)| {
        if w == flag {
            Some((i, false))
        } else if w.len() > flag.len() && w.starts_with(flag) && w.as_bytes()[flag.len()] == b'=' {
            Some((i, true))
        } else {
            None
        }
    })
}

pub(crate) fn value_of(words: &[String], flag: &str) -> Option<String> {
    match find(words, flag)? {
        (i, true) => Some(words[i][flag.len() + 1..].to_string()),
        (i, false) => words.get(i + 1).cloned(),
    }
}

pub(crate) fn has(words: &[String], flag: &str) -> bool {
    find(words, flag).is_some()
}

/// Sets `flag value`, in place when present (keeping its `=` style),
/// appended otherwise.
pub(crate) fn set(words: &mut Vec<String>, flag: &str, value: &str) {
    match find(words, flag) {
        Some((i, true)) => words[i] = format!("{flag}={value}"),
        Some((i, false))
            if i + 1 < words.len() && !SHELL_STOPS.contains(&words[i + 1].as_str()) =>
        {
            words[i + 1] = value.to_string()
        }
        Some((i, false)) => words.insert(i + 1, value.to_string()),
        None => {
            let at = insert_at(words);
            words.splice(at..at, [flag.to_string(), value.to_string()]);
        }
    }
}

/// Removes every `flag value` / `flag=value`.
pub(crate) fn remove_valued(words: &mut Vec<String>, flag: &str) {
    while let Some((i, inline)) = find(words, flag) {
        let end = insert_at(words);
        let n = if inline || i + 1 >= end { 1 } else { 2 };
        words.drain(i..i + n);
    }
}

/// Adds a bare switch unless present.
pub(crate) fn add_switch(words: &mut Vec<String>, flag: &str) {
    if !has(words, flag) {
        let at = insert_at(words);
        words.insert(at, flag.to_string());
    }
}

/// Removes every occurrence of a bare switch.
pub(crate) fn remove_switch(words: &mut Vec<String>, flag: &str) {
    let end = insert_at(words);
    let mut i = 0;
    let mut end = end;
    while i < end {
        if words[i] == flag {
            words.remove(i);
            end -= 1;
        } else {
            i += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn split_and_join_round_trip() {
        let s = r#"python3 -m dynamo.trtllm --override-engine-args '{"a": 1}' --x "b c" 2>&1 | tee /tmp/l.log"#;
        let words = shell_split(s).unwrap();
        assert_eq!(words[4], r#"{"a": 1}"#);
        assert_eq!(words[6], "b c");
        assert_eq!(words[7], "2>&1");
        assert_eq!(shell_split(&shell_join(&words)).unwrap(), words);
        assert!(shell_split("a 'b").is_err());
    }

    #[test]
    fn set_goes_before_redirection() {
        let mut words = w(&[
            "python3",
            "-m",
            "dynamo.vllm",
            "--model",
            "m",
            "2>&1",
            "|",
            "tee",
            "x",
        ]);
        set(&mut words, "--tensor-parallel-size", "2");
        assert_eq!(&words[5..7], &w(&["--tensor-parallel-size", "2"])[..]);
        set(&mut words, "--model", "n");
        assert_eq!(words[4], "n");
        add_switch(&mut words, "--enable-expert-parallel");
        assert_eq!(words[7], "--enable-expert-parallel");
        remove_valued(&mut words, "--model");
        assert!(!has(&words, "--model"));
        assert_eq!(words.last().unwrap(), "x");
    }

    #[test]
    fn inline_values_are_kept_inline() {
        let mut words = w(&["--http-port=8000", "--tp", "1"]);
        set(&mut words, "--http-port", "9000");
        assert_eq!(words[0], "--http-port=9000");
        assert_eq!(value_of(&words, "--tp").as_deref(), Some("1"));
        remove_valued(&mut words, "--http-port");
        assert_eq!(words, w(&["--tp", "1"]));
        // A prefix of another flag is not that flag.
        assert!(!has(&w(&["--tp-size", "2"]), "--tp"));
    }
}
