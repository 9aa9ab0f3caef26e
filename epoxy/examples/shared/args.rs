//! Command-line flags of the simulation examples (`hunt`, `pair_kill`): `--flag value` pairs.
// Each example compiles this file on its own and uses only some of it.
#![allow(dead_code)]

use std::str::FromStr;

pub struct Args(Vec<String>);

impl Args {
    pub fn from_env() -> Self {
        Self(std::env::args().collect())
    }

    /// Whether `flag` is given.
    pub fn has(&self, flag: &str) -> bool {
        self.0.iter().any(|a| a == flag)
    }

    /// The value after `flag`, parsed, or `default` when the flag is absent; exits with a message
    /// naming the flag when the value does not parse.
    pub fn get<T: FromStr>(&self, flag: &str, default: &str) -> T {
        let value = (self.0.iter().position(|a| a == flag))
            .and_then(|i| self.0.get(i + 1))
            .map_or(default, |v| v.as_str());
        value.parse().unwrap_or_else(|_| {
            eprintln!("{flag} takes a value like {default:?}, not {value:?}");
            std::process::exit(2)
        })
    }

    /// A comma-separated list of cluster sizes after `--replicas`.
    pub fn replicas(&self, default: &str) -> Vec<usize> {
        let list: String = self.get("--replicas", default);
        list.split(',')
            .map(|n| {
                n.parse().unwrap_or_else(|_| {
                    eprintln!("--replicas takes a list like {default}, not {list:?}");
                    std::process::exit(2)
                })
            })
            .collect()
    }
}
