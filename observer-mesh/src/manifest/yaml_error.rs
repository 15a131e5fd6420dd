//! YAML errors as a person reads them: the field path of the value at fault
//! (`spec.portLevelMtls.8080.mode`), a message in the observer's words, and none of the parser
//! library's internals (its option names, its budget structures, repeated alias locations).

use serde_saphyr::{Error, budget::BudgetBreach};

/// The message of a YAML error, without position (the caller adds file:line).
pub fn yaml_message(error: &Error) -> String {
    let error = error.without_snippet();
    match error {
        Error::Budget { breach, .. } => budget_message(breach),
        Error::DuplicateMappingKey { key: Some(key), .. } => format!("key \"{key}\" appears twice in one mapping"),
        Error::DuplicateMappingKey { key: None, .. } => "a key appears twice in one mapping".to_owned(),
        Error::AliasReplayCounterOverflow { .. }
        | Error::AliasReplayLimitExceeded { .. }
        | Error::AliasExpansionLimitExceeded { .. }
        | Error::AliasReplayStackDepthExceeded { .. } => {
            "anchors and aliases expand to more YAML than a manifest may hold".to_owned()
        }
        Error::SerdeInvalidType { unexpected, expected, .. }
        | Error::SerdeInvalidValue { unexpected, expected, .. } => {
            format!("expected {expected}, found {unexpected}")
        }
        // Re-raised through an alias: the message of the error underneath, once.
        Error::AliasError { msg, .. } if msg.contains("budget breached") => {
            "the document expands (through anchors and aliases) to more YAML than a manifest may hold".to_owned()
        }
        Error::AliasError { msg, .. } => strip_positions(msg),
        _ => strip_positions(&error.to_string()),
    }
}

/// An error about one value (its type, its spelling): the rest of the document can still be
/// read past it. Structural errors (syntax, budgets, aliases) are not.
pub fn is_value_error(error: &Error) -> bool {
    matches!(
        error.without_snippet(),
        Error::SerdeInvalidType { .. }
            | Error::SerdeInvalidValue { .. }
            | Error::SerdeUnknownVariant { .. }
            | Error::Unexpected { .. }
            | Error::InvalidScalar { .. }
            | Error::InvalidBooleanStrict { .. }
            | Error::NonFiniteFloat { .. }
            | Error::QuotingRequired { .. }
    )
}

fn budget_message(breach: &BudgetBreach) -> String {
    let what = match breach {
        BudgetBreach::Nodes { .. } | BudgetBreach::Events { .. } => "more YAML nodes",
        BudgetBreach::Aliases { .. } | BudgetBreach::AliasAnchorRatio { .. } => "more aliases",
        BudgetBreach::Anchors { .. } => "more anchors",
        BudgetBreach::Depth { .. } => "deeper nesting",
        BudgetBreach::ScalarBytes { .. } | BudgetBreach::InputBytes { .. } => "a longer value",
        _ => "more YAML",
    };
    format!("the document holds {what} than a manifest may")
}

/// "line 2 column 1: message", "message at line 2, column 1", and the library's hints, gone.
fn strip_positions(text: &str) -> String {
    let first = text.lines().next().unwrap_or("").trim();
    let first = first.strip_prefix("error: ").unwrap_or(first);
    let first = match first.strip_prefix("line ").and_then(|rest| rest.split_once(": ")) {
        Some((_, message)) => message,
        None => first,
    };
    let first = match first.find(" at line ") {
        Some(i) => &first[..i],
        None => first,
    };
    first.split(", set ").next().unwrap_or(first).to_owned()
}

/// `doc` with the one-line value starting at `line`:`column` (1-based) replaced by `null`, so
/// that reading it again finds the errors after it: a scalar, a quoted string or a flow
/// collection on that line. `None` when the value is not such (a block collection).
pub fn blank_value(doc: &str, line: usize, column: usize) -> Option<String> {
    let text = doc.lines().nth(line.checked_sub(1)?)?;
    let start = column.checked_sub(1)?;
    let value = text.get(start..)?;
    let len = match value.chars().next()? {
        open @ ('[' | '{') => {
            let close = if open == '[' { ']' } else { '}' };
            let mut depth = 0usize;
            let mut quote = None;
            let mut end = None;
            for (i, c) in value.char_indices() {
                match (quote, c) {
                    (Some(q), c) if c == q => quote = None,
                    (Some(_), _) => {}
                    (None, '"' | '\'') => quote = Some(c),
                    (None, c) if c == open => depth += 1,
                    (None, c) if c == close => {
                        depth -= 1;
                        if depth == 0 {
                            end = Some(i + 1);
                            break;
                        }
                    }
                    _ => {}
                }
            }
            end?
        }
        quote @ ('"' | '\'') => value[1..].find(quote)? + 2,
        _ => value.find([',', '}', ']', '#']).unwrap_or(value.len()),
    };
    let len = value[..len].trim_end().len();
    if len == 0 {
        return None;
    }
    let mut out = String::with_capacity(doc.len());
    for (i, l) in doc.lines().enumerate() {
        if i + 1 == line {
            out.push_str(&l[..start]);
            out.push_str("null");
            out.push_str(&l[start + len..]);
        } else {
            out.push_str(l);
        }
        out.push('\n');
    }
    Some(out)
}

/// Most steps of a field path shown (the first and last halves of a longer one).
const MAX_PATH_STEPS: usize = 16;

/// One step of a field path.
#[derive(Clone, Debug, PartialEq)]
enum Step {
    Key(String),
    Index(usize),
}

/// The field path of the value at `line`:`column` (1-based, in `doc`): the keys and sequence
/// indices of the block structure above it, then of the flow collections (`{..}`, `[..]`) on
/// its line before it. `None` at the top level.
pub fn field_path(doc: &str, line: usize, column: usize) -> Option<String> {
    let mut stack: Vec<(usize, Step)> = Vec::new();
    let mut flow_text = "";
    for (i, text) in doc.lines().enumerate().take(line) {
        let text = if i + 1 == line { text.get(..column.saturating_sub(1)).unwrap_or(text) } else { text };
        let mut indent = text.len() - text.trim_start_matches(' ').len();
        let mut rest = &text[indent..];
        if rest.is_empty() || rest.starts_with('#') {
            continue;
        }
        while let Some(item) = rest.strip_prefix("- ").or_else(|| (rest == "-").then_some("")) {
            stack.retain(|(at, _)| *at <= indent);
            match stack.last_mut() {
                Some((at, Step::Index(n))) if *at == indent => *n += 1,
                _ => stack.push((indent, Step::Index(0))),
            }
            indent += 2 + (item.len() - item.trim_start_matches(' ').len());
            rest = item.trim_start_matches(' ');
        }
        if let Some((key, value)) = block_key(rest) {
            stack.retain(|(at, _)| *at < indent);
            stack.push((indent, Step::Key(key)));
            rest = value;
        }
        flow_text = if i + 1 == line { rest } else { "" };
    }
    let mut steps: Vec<Step> = stack.into_iter().map(|(_, s)| s).collect();
    steps.extend(flow_steps(flow_text));
    if steps.is_empty() {
        return None;
    }
    // A hostile document nests thousands deep: the message names the ends of the path.
    if steps.len() > MAX_PATH_STEPS {
        let tail = steps.split_off(steps.len() - MAX_PATH_STEPS / 2);
        steps.truncate(MAX_PATH_STEPS / 2);
        steps.push(Step::Key("…".to_owned()));
        steps.extend(tail);
    }
    let mut path = String::new();
    for step in steps {
        match step {
            Step::Key(k) if path.is_empty() => path.push_str(&k),
            Step::Key(k) => {
                path.push('.');
                path.push_str(&k);
            }
            Step::Index(n) => path.push_str(&format!("[{n}]")),
        }
    }
    Some(path)
}

/// `key: value` (or `key:` alone) at the start of a block line: the key and what follows it.
fn block_key(text: &str) -> Option<(String, &str)> {
    if text.starts_with(['{', '[', '"', '\'']) && !text.starts_with(['"', '\'']) {
        return None;
    }
    let (key, value) = if let Some(quote @ ('"' | '\'')) = text.chars().next() {
        let end = text[1..].find(quote)? + 1;
        let after = text[end + 1..].strip_prefix(':')?;
        (text[1..end].to_owned(), after)
    } else {
        let colon = text.find(": ").or_else(|| text.ends_with(':').then(|| text.len() - 1))?;
        (text[..colon].trim().to_owned(), &text[colon + 1..])
    };
    Some((key, value.trim_start()))
}

/// The steps into the flow collections open at the end of `text`.
fn flow_steps(text: &str) -> Vec<Step> {
    // Each open collection: its step so far (the key being read, or the item index).
    let mut open: Vec<(bool, Option<Step>)> = Vec::new(); // (is a mapping, current step)
    let mut token = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            '{' => open.push((true, None)),
            '[' => open.push((false, Some(Step::Index(0)))),
            '}' | ']' => {
                open.pop();
            }
            ',' => {
                if let Some((is_map, step)) = open.last_mut() {
                    *step = if *is_map {
                        None
                    } else {
                        match step {
                            Some(Step::Index(n)) => Some(Step::Index(*n + 1)),
                            _ => Some(Step::Index(0)),
                        }
                    };
                }
                token.clear();
            }
            ':' => {
                if let Some((true, step)) = open.last_mut() {
                    *step = Some(Step::Key(token.trim().trim_matches(['"', '\'']).to_owned()));
                }
                token.clear();
            }
            '"' | '\'' => {
                for q in chars.by_ref() {
                    if q == c {
                        break;
                    }
                    token.push(q);
                }
            }
            c => token.push(c),
        }
    }
    open.into_iter().filter_map(|(_, step)| step).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "apiVersion: v1\nkind: PeerAuthentication\nspec:\n  mtls: {mode: [1, 2]}\n  portLevelMtls:\n    \"8080\":\n      mode: [x]\n  servers:\n  - port: {number: 443}\n    hosts: [a, {b: 1}]\n  - port: 1\n";

    #[test]
    fn paths_follow_blocks_flows_and_sequences() {
        let at = |line: usize, needle: &str| {
            let column = DOC.lines().nth(line - 1).and_then(|l| l.find(needle)).expect("needle") + 1;
            field_path(DOC, line, column)
        };
        assert_eq!(at(1, "v1").as_deref(), Some("apiVersion"));
        assert_eq!(at(4, "[1").as_deref(), Some("spec.mtls.mode"));
        assert_eq!(at(4, "2]").as_deref(), Some("spec.mtls.mode[1]"));
        assert_eq!(at(7, "[x]").as_deref(), Some("spec.portLevelMtls.8080.mode"));
        assert_eq!(at(9, "443").as_deref(), Some("spec.servers[0].port.number"));
        assert_eq!(at(10, "1}").as_deref(), Some("spec.servers[0].hosts[1].b"));
        assert_eq!(at(11, "1").as_deref(), Some("spec.servers[1].port"));
        assert_eq!(field_path(DOC, 1, 1), None);
        let deep = format!("data: {}", "[".repeat(10_000));
        let path = field_path(&deep, 1, deep.len() + 1).expect("a path");
        assert_eq!(path, format!("data{}.…{}", "[0]".repeat(7), "[0]".repeat(8)));
    }

    #[test]
    fn one_line_values_are_blanked() {
        let doc = "spec:\n  mtls: {mode: [1, \"]\"]}\n  selector: 5 # five\n  ports:\n  - 1\n";
        let col =
            |line: usize, needle: &str| doc.lines().nth(line - 1).and_then(|l| l.find(needle)).expect("needle") + 1;
        assert_eq!(
            blank_value(doc, 2, col(2, "[1")).as_deref(),
            Some("spec:\n  mtls: {mode: null}\n  selector: 5 # five\n  ports:\n  - 1\n")
        );
        assert_eq!(
            blank_value(doc, 3, col(3, "5")).as_deref(),
            Some("spec:\n  mtls: {mode: [1, \"]\"]}\n  selector: null # five\n  ports:\n  - 1\n")
        );
        assert_eq!(blank_value(doc, 4, 9), None, "a block collection is not one line");
    }

    #[test]
    fn library_hints_are_not_repeated() {
        assert_eq!(
            strip_positions("duplicate mapping key: name, set DuplicateKeyPolicy in Options if acceptable"),
            "duplicate mapping key: name"
        );
        assert_eq!(strip_positions("line 2 column 1: bad thing at line 2, column 1"), "bad thing");
    }
}
