//! The one quoting function for the few places where a POSIX shell is unavoidable (remote
//! shells, readable command lines in results). User data is otherwise passed as argv.

/// Quotes one word for a POSIX shell: safe words stay bare, others go in single quotes.
pub fn quote(word: &str) -> String {
    let safe = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c));
    if safe {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}

/// Quotes and joins words into one shell command line.
pub fn join<S: AsRef<str>>(words: &[S]) -> String {
    words
        .iter()
        .map(|w| quote(w.as_ref()))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_what_a_shell_would_interpret() {
        assert_eq!(quote("nginx"), "nginx");
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote(""), "''");
        assert_eq!(quote("it's"), "'it'\\''s'");
        assert_eq!(quote("$HOME;rm"), "'$HOME;rm'");
    }

    #[test]
    fn round_trips_through_sh() {
        let words = ["printf", "%s\\n", "a b", "it's", "$HOME", "`x`", "\"q\""];
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(join(&words))
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "a b\nit's\n$HOME\n`x`\n\"q\"\n"
        );
    }
}
