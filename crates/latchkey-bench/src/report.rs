//! The result table: each figure with ours, the reference, and the ratio.

/// One measured figure.
pub struct Row {
    figure: String,
    ours: f64,
    reference: f64,
    reference_name: String,
    unit: String,
}

/// All rows of a run.
pub struct Report {
    rows: Vec<Row>,
}

impl Report {
    /// An empty report.
    pub fn new() -> Self {
        Self { rows: Vec::new() }
    }

    /// Adds a figure; the ratio is ours / reference.
    pub fn add(
        &mut self,
        figure: &str,
        ours: f64,
        reference_name: &str,
        reference: f64,
        unit: &str,
    ) {
        eprintln!("  {figure}: {ours:.1} {unit} vs {reference_name} {reference:.1} {unit}");
        self.rows.push(Row {
            figure: figure.into(),
            ours,
            reference,
            reference_name: reference_name.into(),
            unit: unit.into(),
        });
    }

    /// Prints the table as Markdown.
    pub fn print(&self) {
        println!("| figure | ours | reference | ratio |");
        println!("|---|---:|---|---:|");
        for r in &self.rows {
            let ratio = if r.reference > 0.0 {
                r.ours / r.reference
            } else {
                0.0
            };
            println!(
                "| {} | {:.1} {} | {} {:.1} {} | {:.2} |",
                r.figure, r.ours, r.unit, r.reference_name, r.reference, r.unit, ratio
            );
        }
    }
}
