//! The workloads `mortar-chaos bench compare` runs: `--matrix clients=1,16,64,256 conflict=0,1` is one
//! row per combination, the first dimension outermost.

use mortar_node::bench::{CLIENTS_MAX, VALUE_BYTES_MAX, schedule};

/// Most rows in one matrix.
pub const ROWS_MAX: usize = 256;

/// A dimension of the matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dimension {
    Clients,
    Conflict,
    Reads,
    ValueSize,
    /// Requests per second for an open loop; 0 is a closed loop.
    Rate,
}

impl Dimension {
    pub const ALL: [Dimension; 5] =
        [Dimension::Clients, Dimension::Conflict, Dimension::Reads, Dimension::ValueSize, Dimension::Rate];

    pub fn name(self) -> &'static str {
        match self {
            Dimension::Clients => "clients",
            Dimension::Conflict => "conflict",
            Dimension::Reads => "reads",
            Dimension::ValueSize => "value-size",
            Dimension::Rate => "rate",
        }
    }

    fn check(self, value: f64) -> Result<(), String> {
        let (ok, range) = match self {
            Dimension::Clients => (
                value.fract() == 0.0 && (1.0..=CLIENTS_MAX as f64).contains(&value),
                format!("1 to {CLIENTS_MAX}"),
            ),
            Dimension::Conflict | Dimension::Reads => {
                ((0.0..=1.0).contains(&value), "0.0 to 1.0".to_string())
            }
            Dimension::ValueSize => (
                value.fract() == 0.0 && (0.0..=VALUE_BYTES_MAX as f64).contains(&value),
                format!("0 to {VALUE_BYTES_MAX} bytes"),
            ),
            Dimension::Rate => (
                (0.0..=schedule::RATE_MAX).contains(&value),
                format!("0 (closed loop) to {}", schedule::RATE_MAX),
            ),
        };
        if ok { Ok(()) } else { Err(format!("{}={value} is out of range: give {range}", self.name())) }
    }
}

/// One workload: a value for every dimension.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Row {
    pub clients: u64,
    pub conflict: f64,
    pub reads: f64,
    pub value_size: usize,
    /// `None`: closed loop.
    pub rate: Option<f64>,
}

impl Row {
    pub fn get(&self, dimension: Dimension) -> f64 {
        match dimension {
            Dimension::Clients => self.clients as f64,
            Dimension::Conflict => self.conflict,
            Dimension::Reads => self.reads,
            Dimension::ValueSize => self.value_size as f64,
            Dimension::Rate => self.rate.unwrap_or(0.0),
        }
    }

    fn set(&mut self, dimension: Dimension, value: f64) {
        match dimension {
            Dimension::Clients => self.clients = value as u64,
            Dimension::Conflict => self.conflict = value,
            Dimension::Reads => self.reads = value,
            Dimension::ValueSize => self.value_size = value as usize,
            Dimension::Rate => self.rate = (value > 0.0).then_some(value),
        }
    }
}

/// The parsed `--matrix`: the dimensions named, in order, and every row.
#[derive(Debug, Clone, PartialEq)]
pub struct Matrix {
    pub dimensions: Vec<Dimension>,
    pub rows: Vec<Row>,
}

/// Parses `--matrix` words (`name=v1,v2,...`; words may also be separated by spaces within one
/// argument). Dimensions not named keep their value in `base`.
pub fn parse(words: &[String], base: Row) -> Result<Matrix, String> {
    let mut dimensions = Vec::new();
    let mut values: Vec<Vec<f64>> = Vec::new();
    for word in words.iter().flat_map(|w| w.split_whitespace()) {
        let (name, list) = word
            .split_once('=')
            .ok_or_else(|| format!("--matrix: `{word}` is not name=v1,v2,... (e.g. clients=1,16,64)"))?;
        let dimension = Dimension::ALL.into_iter().find(|d| d.name() == name).ok_or_else(|| {
            let names: Vec<&str> = Dimension::ALL.iter().map(|d| d.name()).collect();
            format!("--matrix: unknown dimension `{name}`; use {}", names.join(", "))
        })?;
        if dimensions.contains(&dimension) {
            return Err(format!("--matrix: `{name}` is given twice; list all its values once: {name}=a,b"));
        }
        let mut parsed = Vec::new();
        for text in list.split(',').filter(|t| !t.is_empty()) {
            let value: f64 =
                text.parse().map_err(|_| format!("--matrix: `{text}` in `{word}` is not a number"))?;
            dimension.check(value).map_err(|e| format!("--matrix: {e}"))?;
            parsed.push(value);
        }
        if parsed.is_empty() {
            return Err(format!("--matrix: `{word}` has no values"));
        }
        dimensions.push(dimension);
        values.push(parsed);
    }
    let count = values.iter().try_fold(1usize, |n, v| n.checked_mul(v.len()).filter(|&n| n <= ROWS_MAX));
    if count.is_none() {
        return Err(format!("--matrix has more than {ROWS_MAX} rows; give fewer values"));
    }
    let mut rows = vec![base];
    for (dimension, values) in dimensions.iter().zip(&values) {
        rows = rows
            .iter()
            .flat_map(|row| {
                values.iter().map(move |&v| {
                    let mut row = *row;
                    row.set(*dimension, v);
                    row
                })
            })
            .collect();
    }
    Ok(Matrix { dimensions, rows })
}

#[cfg(test)]
#[path = "matrix_test.rs"]
mod matrix_test;
