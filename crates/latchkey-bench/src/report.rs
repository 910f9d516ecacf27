//! The result of a run: one headline figure per row of issue 15's table (ours, the
//! reference measured in the same run, the ratio, the target and whether it is met), the
//! supporting figures below it (latencies, revoke timings), notes, and the files written
//! from them: `results.md` and `results.json`. Charts are drawn from it by `chart`.
//! It measures nothing.

use crate::machine::Machine;
use serde_json::{json, Value};
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

impl Better {
    fn word(self) -> &'static str {
        match self {
            Better::Higher => "higher",
            Better::Lower => "lower",
        }
    }
}

/// How a checked value must compare with its bound.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// `>=`
    AtLeast,
    /// `<=`
    AtMost,
    /// `<`
    Below,
}

/// One condition of a target, e.g. `ratio >= 0.5` or `p99 < 50 ms`.
#[derive(Clone, Debug)]
pub struct Check {
    /// What is checked (`ratio`, `p99 ms`, `appends/s`).
    pub what: String,
    /// The measured value; `None` when it could not be measured (not met).
    pub value: Option<f64>,
    /// The comparison.
    pub op: Op,
    /// The bound.
    pub bound: f64,
}

impl Check {
    /// A check of `value` against `bound`.
    pub fn new(what: &str, value: Option<f64>, op: Op, bound: f64) -> Self {
        Self {
            what: what.into(),
            value,
            op,
            bound,
        }
    }

    /// True when the value was measured and satisfies the bound.
    pub fn met(&self) -> bool {
        self.value.is_some_and(|v| match self.op {
            Op::AtLeast => v >= self.bound,
            Op::AtMost => v <= self.bound,
            Op::Below => v < self.bound,
        })
    }

    /// `ratio >= 0.5`.
    pub fn target_text(&self) -> String {
        let op = match self.op {
            Op::AtLeast => ">=",
            Op::AtMost => "<=",
            Op::Below => "<",
        };
        format!("{} {op} {}", self.what, num(self.bound))
    }
}

/// One row of the table.
#[derive(Clone, Debug)]
pub struct Headline {
    /// The stable id in `results.json`.
    pub id: &'static str,
    /// What was measured, in words.
    pub figure: String,
    /// Our number (`None`: not measured in this run).
    pub ours: Option<f64>,
    /// Unit of ours and the reference.
    pub unit: String,
    /// What it is compared with.
    pub reference_name: String,
    /// The reference's number.
    pub reference: Option<f64>,
    /// Which way is better.
    pub better: Better,
    /// Every condition of the target; met when all hold.
    pub checks: Vec<Check>,
    /// What the figure includes: threads, concurrency, what the client does.
    pub includes: String,
}

impl Headline {
    /// ours / reference, when both were measured and the reference is not zero.
    pub fn ratio(&self) -> Option<f64> {
        let r = self.reference.filter(|r| *r > 0.0)?;
        self.ours.map(|o| o / r)
    }

    /// True when ours was measured and every check holds.
    pub fn met(&self) -> bool {
        self.ours.is_some() && !self.checks.is_empty() && self.checks.iter().all(Check::met)
    }

    /// The target as text: `ratio >= 0.8, appends/s >= 50000`.
    pub fn target(&self) -> String {
        self.checks
            .iter()
            .map(Check::target_text)
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The row's columns as shown on the console and in `results.md`: id, figure, ours,
    /// the reference's name, the reference, the ratio and the target.
    fn columns(&self) -> [String; 7] {
        [
            self.id.to_string(),
            self.figure.to_string(),
            opt(self.ours, &self.unit),
            self.reference_name.to_string(),
            opt(self.reference, &self.unit),
            self.ratio()
                .map(|r| format!("{r:.3}"))
                .unwrap_or("n/a".into()),
            self.target(),
        ]
    }

    /// The row as a `results.json` object.
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "ours": self.ours,
            "reference": self.reference,
            "ratio": self.ratio(),
            "target": self.target(),
            "better": self.better.word(),
            "met": self.met(),
            "figure": self.figure,
            "unit": self.unit,
            "reference_name": self.reference_name,
            "checks": self.checks.iter().map(|c| json!({
                "what": c.what,
                "value": c.value,
                "target": c.target_text(),
                "met": c.met(),
            })).collect::<Vec<_>>(),
        })
    }
}

/// The ids of the headline rows, in the order.
pub const IDS: [&str; 6] = [
    "signin_vs_verify_peer",
    "authed_vs_healthz",
    "append_64_vs_raw",
    "replay_vs_raw",
    "fanout_max_vs_nats",
    "rss_per_idle_conn_kib",
];

/// The ids of the JetStream rows (issue 17): each figure on 1 and 2 latchkey nodes over a
/// local `nats-server -js`, beside the same figure on sled from the same run.
pub const JETSTREAM_IDS: [&str; 6] = [
    "jetstream_append_1node",
    "jetstream_append_2nodes",
    "jetstream_signin_1node",
    "jetstream_signin_2nodes",
    "jetstream_fanout_1node",
    "jetstream_fanout_2nodes",
];

/// One JetStream figure beside the same figure on sled (no target: a comparison).
#[derive(Clone, Debug)]
pub struct Compared {
    /// One of [`JETSTREAM_IDS`].
    pub id: &'static str,
    /// What was measured, in words.
    pub figure: String,
    /// On JetStream (`None`: not measured).
    pub jetstream: Option<f64>,
    /// On sled, by the same driver in the same run (`None`: not measured).
    pub sled: Option<f64>,
    /// Unit of both.
    pub unit: String,
    /// What the figure includes.
    pub includes: String,
}

impl Compared {
    /// JetStream / sled, when both were measured.
    pub fn ratio(&self) -> Option<f64> {
        let s = self.sled.filter(|s| *s > 0.0)?;
        self.jetstream.map(|j| j / s)
    }

    /// The row as a `results.json` object, with the headline rows' keys (no target).
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "ours": self.jetstream,
            "reference": self.sled,
            "ratio": self.ratio(),
            "target": Value::Null,
            "better": Better::Higher.word(),
            "met": Value::Null,
            "figure": self.figure,
            "unit": self.unit,
            "reference_name": "sled, same driver, same run",
            "checks": [],
        })
    }
}

/// One supporting figure (below the headline table).
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

/// Everything a run measured.
#[derive(Default)]
pub struct Report {
    headlines: Vec<Headline>,
    rows: Vec<Row>,
    notes: Vec<String>,
    distributions: Vec<Distribution>,
    compared: Vec<Compared>,
    /// Sled figures the JetStream rows compare with, by name (`append`, `signin`,
    /// `fanout_one_room`), kept by the sled scenarios.
    baselines: Vec<(&'static str, f64)>,
}

/// A number with as many digits as it deserves.
pub fn num(v: f64) -> String {
    let a = v.abs();
    if a >= 1000.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else if a >= 0.1 || a == 0.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

fn opt(v: Option<f64>, unit: &str) -> String {
    v.map(|v| format!("{} {unit}", num(v)))
        .unwrap_or_else(|| "not measured".into())
}

impl Report {
    /// An empty report.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) a headline row.
    pub fn headline(&mut self, h: Headline) {
        let [id, figure, ours, ref_name, reference, ratio, target] = h.columns();
        let met = if h.met() { "met" } else { "not met" };
        eprintln!(
            "  [{id}] {figure}: ours {ours} | {ref_name}: {reference} | ratio {ratio} | \
             target {target} | {met}"
        );
        self.headlines.retain(|x| x.id != h.id);
        self.headlines.push(h);
    }

    /// The headline rows in the order; an id this run did not measure is a row
    /// with no numbers (not met), so every id is always present.
    pub fn headlines(&self) -> Vec<Headline> {
        IDS.iter()
            .map(|id| {
                self.headlines
                    .iter()
                    .find(|h| h.id == *id)
                    .cloned()
                    .unwrap_or_else(|| Headline {
                        id,
                        figure: "not measured in this run".into(),
                        ours: None,
                        unit: String::new(),
                        reference_name: "none".into(),
                        reference: None,
                        better: Better::Higher,
                        checks: Vec::new(),
                        includes: "this scenario did not run or failed (see the notes)".into(),
                    })
            })
            .collect()
    }

    /// Adds a supporting rate (higher is better); the ratio is ours / reference.
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

    /// Adds a supporting figure of either direction, with an optional reference.
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
        let ratio = row
            .ratio()
            .map(|r| format!("{r:.3}"))
            .unwrap_or("n/a".into());
        eprintln!(
            "  {figure}: ours {} {unit} | {reference_name}: {} | ratio {ratio}",
            num(ours),
            opt(reference, unit)
        );
        self.rows.push(row);
    }

    /// A note printed under the tables (a skip, a caveat, a check that passed).
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

    /// Keeps a sled figure for the JetStream rows (`append`, `signin`, `fanout_one_room`).
    pub fn baseline(&mut self, name: &'static str, value: f64) {
        self.baselines.retain(|(n, _)| *n != name);
        self.baselines.push((name, value));
    }

    /// A sled figure kept by [`Report::baseline`] earlier in the run.
    pub fn baseline_of(&self, name: &str) -> Option<f64> {
        self.baselines
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| *v)
    }

    /// Adds (or replaces) a JetStream row.
    pub fn compared(&mut self, c: Compared) {
        let ratio = c.ratio().map(|r| format!("{r:.3}")).unwrap_or("n/a".into());
        eprintln!(
            "  [{}] {}: JetStream {} | sled {} | ratio {ratio}",
            c.id,
            c.figure,
            opt(c.jetstream, &c.unit),
            opt(c.sled, &c.unit)
        );
        self.compared.retain(|x| x.id != c.id);
        self.compared.push(c);
    }

    /// The JetStream rows in [`JETSTREAM_IDS`] order; an id not measured is a row with no
    /// numbers.
    pub fn jetstream_rows(&self) -> Vec<Compared> {
        JETSTREAM_IDS
            .iter()
            .map(|id| {
                self.compared
                    .iter()
                    .find(|c| c.id == *id)
                    .cloned()
                    .unwrap_or_else(|| Compared {
                        id,
                        figure: "not measured in this run".into(),
                        jetstream: None,
                        sled: None,
                        unit: String::new(),
                        includes: "this scenario did not run or failed (see the notes)".into(),
                    })
            })
            .collect()
    }

    /// The JetStream table as Markdown.
    pub fn jetstream_table(&self) -> String {
        let mut s = String::new();
        s.push_str("| id | figure | JetStream | sled (same run) | ratio JetStream/sled |\n");
        s.push_str("|---|---|---:|---:|---:|\n");
        for c in self.jetstream_rows() {
            let ratio = c.ratio().map(|r| format!("{r:.3}")).unwrap_or("n/a".into());
            let _ = writeln!(
                s,
                "| `{}` | {} | {} | {} | {ratio} |",
                c.id,
                c.figure,
                opt(c.jetstream, &c.unit),
                opt(c.sled, &c.unit)
            );
        }
        s
    }

    /// The supporting rows.
    pub fn rows(&self) -> &[Row] {
        &self.rows
    }

    /// The kept distributions.
    pub fn distributions(&self) -> &[Distribution] {
        &self.distributions
    }

    /// The headline table as Markdown, then a line per row saying met or not met.
    pub fn headline_table(&self) -> String {
        let mut s = String::new();
        s.push_str("| id | figure | ours | reference | ratio ours/ref | target | met |\n");
        s.push_str("|---|---|---:|---|---:|---|---|\n");
        let all = self.headlines();
        for h in &all {
            let [id, figure, ours, ref_name, reference, ratio, target] = h.columns();
            let met = if h.met() { "**met**" } else { "not met" };
            let _ = writeln!(
                s,
                "| `{id}` | {figure} | {ours} | {ref_name}: {reference} | {ratio} | {target} | {met} |"
            );
        }
        s.push('\n');
        for h in &all {
            let detail: Vec<String> = h
                .checks
                .iter()
                .map(|c| {
                    format!(
                        "{} = {} (target {})",
                        c.what,
                        c.value.map(num).unwrap_or_else(|| "not measured".into()),
                        c.target_text()
                    )
                })
                .collect();
            let _ = writeln!(
                s,
                "- `{}`: {}{}",
                h.id,
                if h.met() { "**met**" } else { "**not met**" },
                if detail.is_empty() {
                    String::new()
                } else {
                    format!(": {}", detail.join("; "))
                }
            );
        }
        s
    }

    /// The supporting table as Markdown.
    pub fn table(&self) -> String {
        let mut s = String::new();
        s.push_str("| figure | ours | ceiling or peer | reference | ratio ours/ref | better |\n");
        s.push_str("|---|---:|---|---:|---:|---|\n");
        for r in &self.rows {
            let ratio = r.ratio().map(|x| format!("{x:.3}")).unwrap_or("n/a".into());
            let _ = writeln!(
                s,
                "| {} | {} {} | {} | {} | {} | {} |",
                r.figure,
                num(r.ours),
                r.unit,
                r.reference_name,
                opt(r.reference, &r.unit),
                ratio,
                r.better.word()
            );
        }
        s
    }

    /// Prints the tables and notes on stdout.
    pub fn print(&self) {
        print!("{}", self.headline_table());
        println!();
        print!("{}", self.table());
        println!();
        print!("{}", self.jetstream_table());
        for n in &self.notes {
            println!("- {n}");
        }
    }

    /// `results.json`: an array with one object per headline id, then one per JetStream
    /// id.
    pub fn json(&self) -> Value {
        let headlines = self
            .headlines()
            .iter()
            .map(Headline::to_json)
            .collect::<Vec<_>>();
        let jetstream = self
            .jetstream_rows()
            .iter()
            .map(Compared::to_json)
            .collect::<Vec<_>>();
        Value::Array(headlines.into_iter().chain(jetstream).collect())
    }

    /// Writes `results.md` and `results.json` into `dir`, naming the charts beside them.
    pub fn write(
        &self,
        dir: &Path,
        machine: &Machine,
        command: &str,
        quick: bool,
        charts: &[String],
    ) -> anyhow::Result<()> {
        std::fs::create_dir_all(dir)?;
        std::fs::write(
            dir.join("results.md"),
            self.markdown(machine, command, quick, charts),
        )?;
        let mut json = serde_json::to_string_pretty(&self.json())?;
        json.push('\n');
        std::fs::write(dir.join("results.json"), json)?;
        Ok(())
    }

    /// The text of `results.md`.
    pub fn markdown(
        &self,
        machine: &Machine,
        command: &str,
        quick: bool,
        charts: &[String],
    ) -> String {
        let mut s = String::new();
        s.push_str("# latchkey benchmark results\n\n");
        if quick {
            s.push_str(
                "**This is the quick run** (`scripts/bench.sh --quick`): smaller sizes and \
                 shorter measurements, to check the whole path. Its numbers are indicative \
                 only; the full run (`scripts/bench.sh`) is the one to quote.\n\n",
            );
        }
        s.push_str(
            "Written by `latchkey-bench`; reproduce with `scripts/bench.sh`. Every reference \
             is measured in the same run, on the same machine, driven by the same client. \
             **The load generators and the servers share the same cores**, so absolute \
             numbers are understated: compare the ratios. `results.json` beside this file \
             holds the headline rows.\n\n",
        );
        let _ = writeln!(s, "- command: `{command}`");
        let _ = writeln!(s, "- date: {}", machine.date);
        let _ = writeln!(s, "- git commit: {}", machine.commit);
        let _ = writeln!(s, "- CPU: {} ({} cores)", machine.cpu, machine.cores);
        let _ = writeln!(s, "- memory: {:.1} GiB", machine.memory_gib);
        let _ = writeln!(s, "- kernel: {}\n", machine.kernel);
        s.push_str("## Headline figures (issue 15)\n\n");
        s.push_str(&self.headline_table());
        s.push_str(
            "\nratio = ours / reference. For a rate (`better: higher`) a ratio above 1 beats \
             the reference; for a cost (`better: lower`) a ratio below 1 does.\n\n",
        );
        s.push_str("### What each figure includes\n\n");
        for h in self.headlines() {
            let _ = writeln!(s, "- `{}`: {}", h.id, h.includes);
        }
        s.push_str("\n## JetStream next to sled (issue 17)\n\n");
        s.push_str(&self.jetstream_table());
        s.push_str(
            "\nratio = JetStream / sled; no target: what the shared log costs. \
             What each includes:\n\n",
        );
        for c in self.jetstream_rows() {
            let _ = writeln!(s, "- `{}`: {}", c.id, c.includes);
        }
        if !self.rows.is_empty() {
            s.push_str("\n## Supporting figures\n\n");
            s.push_str(&self.table());
        }
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
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headline(ours: Option<f64>, reference: Option<f64>) -> Headline {
        Headline {
            id: "append_64_vs_raw",
            figure: "appends".into(),
            ours,
            unit: "appends/s".into(),
            reference_name: "raw sled".into(),
            reference,
            better: Better::Higher,
            checks: vec![
                Check::new(
                    "ratio",
                    ours.zip(reference).map(|(o, r)| o / r),
                    Op::AtLeast,
                    0.8,
                ),
                Check::new("appends/s", ours, Op::AtLeast, 50_000.0),
            ],
            includes: "64 tasks".into(),
        }
    }

    #[test]
    fn ratio_target_and_met() {
        let h = headline(Some(60_000.0), Some(70_000.0));
        assert!((h.ratio().unwrap() - 0.857).abs() < 0.001);
        assert!(h.met());
        assert_eq!(h.target(), "ratio >= 0.80, appends/s >= 50000");
        assert!(!headline(Some(40_000.0), Some(45_000.0)).met());
        assert!(!headline(None, Some(1.0)).met());
        assert!(Check::new("p99 ms", Some(49.0), Op::Below, 50.0).met());
        assert!(!Check::new("p99 ms", Some(50.0), Op::Below, 50.0).met());
        assert!(!Check::new("p99 ms", None, Op::Below, 50.0).met());
    }

    #[test]
    fn every_id_is_written_even_when_not_measured() {
        let mut r = Report::new();
        r.headline(headline(Some(60_000.0), Some(70_000.0)));
        r.push("lat", 2.0, "peer", None, "ms", Better::Lower);
        let json = r.json();
        let rows = json.as_array().unwrap();
        let ids: Vec<&str> = rows.iter().map(|v| v["id"].as_str().unwrap()).collect();
        assert_eq!(ids[..IDS.len()], IDS);
        assert_eq!(ids[IDS.len()..], JETSTREAM_IDS);
        let append = &rows[2];
        assert_eq!(append["met"], true);
        assert_eq!(append["better"], "higher");
        for key in ["ours", "reference", "ratio", "target"] {
            assert!(append.get(key).is_some(), "{key}");
        }
        assert_eq!(rows[0]["met"], false);
        assert!(rows[0]["ours"].is_null());
        let t = r.headline_table();
        assert!(t.contains("- `append_64_vs_raw`: **met**"));
        assert!(t.contains("- `signin_vs_verify_peer`: **not met**"));
        assert!(r.table().contains("not measured"));
        assert!(rows[IDS.len()]["ours"].is_null());
    }

    #[test]
    fn a_jetstream_row_sits_beside_its_sled_baseline() {
        let mut r = Report::new();
        r.baseline("append", 4000.0);
        r.baseline("append", 5000.0);
        assert_eq!(r.baseline_of("append"), Some(5000.0));
        assert_eq!(r.baseline_of("signin"), None);
        r.compared(Compared {
            id: "jetstream_append_2nodes",
            figure: "appends".into(),
            jetstream: Some(1000.0),
            sled: r.baseline_of("append"),
            unit: "appends/s".into(),
            includes: "64 tasks".into(),
        });
        let json = r.json();
        let row = &json.as_array().unwrap()[IDS.len() + 1];
        assert_eq!(row["id"], "jetstream_append_2nodes");
        assert_eq!(row["ours"], 1000.0);
        assert_eq!(row["reference"], 5000.0);
        assert!((row["ratio"].as_f64().unwrap() - 0.2).abs() < 1e-9);
        assert!(r.jetstream_table().contains(
            "| `jetstream_append_2nodes` | appends | 1000 appends/s | 5000 appends/s | 0.200 |"
        ));
    }
}
