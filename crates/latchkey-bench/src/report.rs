//! The result table: each figure with ours, the reference measured in the same run, and
//! the ratio; notes on what was skipped and why; and the Markdown written to
//! `results/results.md`. Charts are drawn from it by `chart`.

use crate::machine::Machine;
use std::fmt::Write as _;
use std::path::Path;

/// Which way a figure improves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Better {
    /// A rate: more is better.
    Higher,
    /// A latency or a cost: less is better.
    Lower,
}

/// One measured figure.
#[derive(Clone, Debug)]
pub struct Row {
    /// What was measured.
    pub figure: String,
    /// Our number.
    pub ours: f64,
    /// What it is compared with (a ceiling or a peer).
    pub reference_name: String,
    /// The reference's number, or `None` when it could not be measured.
    pub reference: Option<f64>,
    /// Unit of both numbers.
    pub unit: String,
    /// Which way is better.
    pub better: Better,
}

impl Row {
    /// ours / reference, when there is a non-zero reference.
    pub fn ratio(&self) -> Option<f64> {
        self.reference.filter(|r| *r > 0.0).map(|r| self.ours / r)
    }
}

/// A latency distribution kept for the CDF chart (milliseconds, sorted, thinned).
#[derive(Clone, Debug)]
pub struct Distribution {
    /// Legend text.
    pub name: String,
    /// Sorted samples.
    pub sorted_ms: Vec<f64>,
}

/// All rows of a run, with notes and distributions.
#[derive(Default)]
pub struct Report {
    rows: Vec<Row>,
    notes: Vec<String>,
    distributions: Vec<Distribution>,
}

fn num(v: f64) -> String {
    let a = v.abs();
    if a >= 1000.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

impl Report {
    /// An empty report.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a rate (higher is better); the ratio is ours / reference.
    pub fn add(
        &mut self,
        figure: &str,
        ours: f64,
        reference_name: &str,
        reference: f64,
        unit: &str,
    ) {
        self.push(
            figure,
            ours,
            reference_name,
            Some(reference),
            unit,
            Better::Higher,
        );
    }

    /// Adds a figure of either direction, with an optional reference.
    pub fn push(
        &mut self,
        figure: &str,
        ours: f64,
        reference_name: &str,
        reference: Option<f64>,
        unit: &str,
        better: Better,
    ) {
        let row = Row {
            figure: figure.into(),
            ours,
            reference_name: reference_name.into(),
            reference,
            unit: unit.into(),
            better,
        };
        let reference = row
            .reference
            .map(|r| format!("{} {unit}", num(r)))
            .unwrap_or_else(|| "not measured".into());
        let ratio = row
            .ratio()
            .map(|r| format!("{r:.3}"))
            .unwrap_or("n/a".into());
        eprintln!(
            "  {figure}: ours {} {unit} | {reference_name}: {reference} | ratio {ratio}",
            num(ours)
        );
        self.rows.push(row);
    }

    /// A note printed under the table (a skip, a caveat).
    pub fn note(&mut self, text: impl Into<String>) {
        let text = text.into();
        eprintln!("  note: {text}");
        self.notes.push(text);
    }

    /// Keeps a latency distribution for the CDF chart.
    pub fn distribution(&mut self, name: &str, sorted_ms: Vec<f64>) {
        self.distributions.push(Distribution {
            name: name.into(),
            sorted_ms,
        });
    }

    /// The rows.
    pub fn rows(&self) -> &[Row] {
        &self.rows
    }

    /// The kept distributions.
    pub fn distributions(&self) -> &[Distribution] {
        &self.distributions
    }

    /// The table as Markdown.
    pub fn table(&self) -> String {
        let mut s = String::new();
        s.push_str("| figure | ours | ceiling or peer | reference | ratio ours/ref | better |\n");
        s.push_str("|---|---:|---|---:|---:|---|\n");
        for r in &self.rows {
            let reference = r
                .reference
                .map(|v| format!("{} {}", num(v), r.unit))
                .unwrap_or_else(|| "not measured".into());
            let ratio = r.ratio().map(|x| format!("{x:.3}")).unwrap_or("n/a".into());
            let better = match r.better {
                Better::Higher => "higher",
                Better::Lower => "lower",
            };
            let _ = writeln!(
                s,
                "| {} | {} {} | {} | {} | {} | {} |",
                r.figure,
                num(r.ours),
                r.unit,
                r.reference_name,
                reference,
                ratio,
                better
            );
        }
        s
    }

    /// Prints the table and notes on stdout.
    pub fn print(&self) {
        print!("{}", self.table());
        for n in &self.notes {
            println!("- {n}");
        }
    }

    /// Writes `results.md` into `dir`, naming the charts beside it.
    pub fn write_markdown(
        &self,
        dir: &Path,
        machine: &Machine,
        command: &str,
        charts: &[String],
    ) -> anyhow::Result<()> {
        let mut s = String::new();
        s.push_str("# latchkey benchmark results\n\n");
        s.push_str(
            "Written by `latchkey-bench`; reproduce with `scripts/bench.sh` (add `--quick` for \
             the short run). Every reference is measured in the same run on the same machine. \
             **The load generators and the server share the same cores**, so absolute numbers \
             are understated and noisy: compare the ratios.\n\n",
        );
        let _ = writeln!(s, "- command: `{command}`");
        let _ = writeln!(s, "- date: {}", machine.date);
        let _ = writeln!(s, "- git commit: {}", machine.commit);
        let _ = writeln!(s, "- CPU: {} ({} cores)", machine.cpu, machine.cores);
        let _ = writeln!(s, "- memory: {:.1} GiB", machine.memory_gib);
        let _ = writeln!(s, "- kernel: {}\n", machine.kernel);
        s.push_str(&self.table());
        s.push_str(
            "\nratio = ours / reference. For a rate (`better: higher`) a ratio above 1 beats \
             the reference; for a latency or cost (`better: lower`) a ratio below 1 does.\n",
        );
        if !self.notes.is_empty() {
            s.push_str("\n## Notes\n\n");
            for n in &self.notes {
                let _ = writeln!(s, "- {n}");
            }
        }
        if !charts.is_empty() {
            s.push_str("\n## Charts\n\n");
            for c in charts {
                let _ = writeln!(s, "![{c}]({c})\n");
            }
        }
        std::fs::create_dir_all(dir)?;
        std::fs::write(dir.join("results.md"), s)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratio_and_table() {
        let mut r = Report::new();
        r.add("x", 50.0, "ceiling", 100.0, "per s");
        r.push("lat", 2.0, "peer", None, "ms", Better::Lower);
        assert_eq!(r.rows()[0].ratio(), Some(0.5));
        assert_eq!(r.rows()[1].ratio(), None);
        let t = r.table();
        assert!(t.contains("| x | 50.0 per s | ceiling | 100.0 per s | 0.500 | higher |"));
        assert!(t.contains("not measured"));
    }
}
