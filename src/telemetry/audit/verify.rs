//! `mcgate audit verify FILE`: walks an audit file line by line and checks every record's own
//! hash, its sequence number and its link to the line before ([`super::chain`]). The first bad
//! line is reported with its number and why; a sound file gives a [`Summary`].

use super::chain::{open, sha256_hex, GENESIS};
use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::Path;

/// A sound file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Records.
    pub records: u64,
    /// Records per `event`.
    pub events: BTreeMap<String, u64>,
    /// Instances that wrote them.
    pub instances: Vec<String>,
    /// `ts` of the first and last record.
    pub first_ts: Option<String>,
    /// See `first_ts`.
    pub last_ts: Option<String>,
    /// SHA-256 of the last line: record it elsewhere to catch a rewritten tail later.
    pub head: String,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "OK: {} records, chain intact", self.records)?;
        if let (Some(a), Some(b)) = (&self.first_ts, &self.last_ts) {
            writeln!(f, "  from {a} to {b}")?;
        }
        writeln!(f, "  instances: {}", self.instances.join(", "))?;
        for (e, n) in &self.events {
            writeln!(f, "  {e}: {n}")?;
        }
        write!(f, "  head: seq {} sha256 {}", self.records, self.head)
    }
}

/// Why a file is not sound.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// The file could not be read.
    #[error("cannot read {path}: {error}")]
    Io {
        /// File.
        path: String,
        /// Cause.
        error: std::io::Error,
    },
    /// Line `line` (1-based) breaks the chain.
    #[error("line {line}: {why}")]
    Broken {
        /// 1-based line number.
        line: u64,
        /// What is wrong.
        why: String,
    },
}

/// Verifies the audit file at `path`.
pub fn verify_file(path: &Path) -> Result<Summary, VerifyError> {
    let io = |error| VerifyError::Io { path: path.display().to_string(), error };
    let file = std::fs::File::open(path).map_err(io)?;
    verify(std::io::BufReader::new(file)).map_err(|e| match e {
        Failure::Io(error) => io(error),
        Failure::Broken { line, why } => VerifyError::Broken { line, why },
    })
}

enum Failure {
    Io(std::io::Error),
    Broken { line: u64, why: String },
}

fn verify(reader: impl BufRead) -> Result<Summary, Failure> {
    let mut s = Summary {
        records: 0,
        events: BTreeMap::new(),
        instances: Vec::new(),
        first_ts: None,
        last_ts: None,
        head: GENESIS.to_owned(),
    };
    for (i, line) in reader.lines().enumerate() {
        let n = i as u64 + 1;
        let line = line.map_err(Failure::Io)?;
        let broken = |why: String| Failure::Broken { line: n, why };
        let opened = open(&line).map_err(|e| broken(e.to_string()))?;
        if opened.seq != n {
            return Err(broken(format!(
                "sequence number {} where {n} was expected (a record was removed, inserted or moved)",
                opened.seq
            )));
        }
        if opened.prev != s.head {
            return Err(broken("does not link to the line before it (that line was changed, removed or moved)".into()));
        }
        let field = |k: &str| opened.record.get(k).and_then(|v| v.as_str()).map(str::to_owned);
        *s.events.entry(field("event").unwrap_or_default()).or_default() += 1;
        if let Some(inst) = field("instance") {
            if !s.instances.contains(&inst) {
                s.instances.push(inst);
            }
        }
        if s.first_ts.is_none() {
            s.first_ts = field("ts");
        }
        s.last_ts = field("ts");
        s.head = sha256_hex(line.as_bytes());
        s.records = n;
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::super::chain::seal;
    use super::*;

    fn file(n: u64) -> Vec<String> {
        let mut prev = GENESIS.to_owned();
        (1..=n)
            .map(|seq| {
                let line = seal(&format!(
                    "{{\"seq\":{seq},\"prev\":\"{prev}\",\"instance\":\"a\",\"ts\":\"t{seq}\",\"event\":\"e\"}}"
                ));
                prev = sha256_hex(line.as_bytes());
                line
            })
            .collect()
    }

    fn check(lines: &[String]) -> Result<Summary, (u64, String)> {
        let text = lines.iter().map(|l| format!("{l}\n")).collect::<String>();
        verify(text.as_bytes()).map_err(|e| match e {
            Failure::Broken { line, why } => (line, why),
            Failure::Io(e) => (0, e.to_string()),
        })
    }

    #[test]
    fn sound_file_summarised_and_each_tampering_named_at_its_line() {
        let lines = file(4);
        let ok = check(&lines).unwrap();
        assert_eq!((ok.records, ok.events["e"], ok.instances.clone()), (4, 4, vec!["a".to_string()]));
        assert_eq!(ok.head, sha256_hex(lines[3].as_bytes()));
        assert_eq!(check(&[]).unwrap().records, 0);

        let mut edited = lines.clone();
        edited[1] = edited[1].replace("\"t2\"", "\"t9\"");
        assert_eq!(check(&edited).unwrap_err().0, 2);

        let mut removed = lines.clone();
        removed.remove(2);
        assert_eq!(check(&removed).unwrap_err().0, 3);

        let mut swapped = lines.clone();
        swapped.swap(1, 2);
        assert_eq!(check(&swapped).unwrap_err().0, 2);

        let mut last = lines.clone();
        last[3] = last[3].replace("\"t4\"", "\"t5\"");
        assert_eq!(check(&last).unwrap_err().0, 4, "an edited last record is caught by its own hash");
    }
}
