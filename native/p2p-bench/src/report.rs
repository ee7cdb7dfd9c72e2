//! The figures as a table and as JSON, and the goals, each printed as met or not (never asserted).

use serde_json::{json, Map, Value};

struct Row {
    label: String,
    value: String,
}

struct Goal {
    name: String,
    wanted: String,
    actual: String,
    met: Option<bool>,
}

#[derive(Default)]
pub struct Report {
    sections: Vec<(String, Vec<Row>)>,
    values: Map<String, Value>,
    goals: Vec<Goal>,
    errors: Vec<String>,
}

impl Report {
    /// Records `value` under `section.key` (JSON) and as a table row.
    pub fn add(&mut self, section: &str, key: &str, label: &str, value: f64, unit: &str) {
        let shown = if !value.is_finite() {
            "n/a".to_string()
        } else if value.abs() >= 100.0 {
            format!("{value:.0}")
        } else if value.abs() >= 1.0 {
            format!("{value:.2}")
        } else {
            format!("{value:.3}")
        };
        self.row(
            section,
            label,
            format!("{shown} {unit}").trim_end().to_string(),
        );
        let entry = self
            .values
            .entry(section.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(m) = entry {
            m.insert(
                key.to_string(),
                if value.is_finite() {
                    json!(value)
                } else {
                    Value::Null
                },
            );
        }
    }

    /// A row whose value is words, not a figure ("not available: ..."); JSON gets null for `key`.
    pub fn text(&mut self, section: &str, key: &str, label: &str, text: &str) {
        self.add(section, key, label, f64::NAN, "");
        if let Some((_, rows)) = self.sections.iter_mut().find(|(s, _)| s == section) {
            if let Some(last) = rows.last_mut() {
                last.value = text.to_string();
            }
        }
    }

    fn row(&mut self, section: &str, label: &str, value: String) {
        let row = Row {
            label: label.to_string(),
            value,
        };
        match self.sections.iter_mut().find(|(s, _)| s == section) {
            Some((_, rows)) => rows.push(row),
            None => self.sections.push((section.to_string(), vec![row])),
        }
    }

    /// A goal: `met` is None when the figures it needs are missing.
    pub fn goal(&mut self, name: &str, wanted: &str, actual: String, met: Option<bool>) {
        self.goals.push(Goal {
            name: name.into(),
            wanted: wanted.into(),
            actual,
            met,
        });
    }

    pub fn error(&mut self, section: &str, message: &str) {
        eprintln!("[{section}] failed: {message}");
        self.errors.push(format!("{section}: {message}"));
    }

    pub fn get(&self, section: &str, key: &str) -> Option<f64> {
        self.values.get(section)?.get(key)?.as_f64()
    }

    pub fn table(&self) -> String {
        let mut out = String::new();
        let width = self
            .sections
            .iter()
            .flat_map(|(_, r)| r.iter().map(|r| r.label.len()))
            .max()
            .unwrap_or(10);
        for (section, rows) in &self.sections {
            out.push_str(&format!("\n== {section}\n"));
            for r in rows {
                out.push_str(&format!("  {:<width$}  {}\n", r.label, r.value));
            }
        }
        out.push_str("\n== goals (reported, never asserted)\n");
        for g in &self.goals {
            let verdict = match g.met {
                Some(true) => "met",
                Some(false) => "NOT MET",
                None => "unknown",
            };
            out.push_str(&format!(
                "  [{verdict:^7}] {}: {} (wanted {})\n",
                g.name, g.actual, g.wanted
            ));
        }
        if !self.errors.is_empty() {
            out.push_str("\n== errors\n");
            for e in &self.errors {
                out.push_str(&format!("  {}\n", e.lines().next().unwrap_or("")));
            }
        }
        out
    }

    pub fn json(&self, machine: Value, command: &str) -> Value {
        let goals: Vec<Value> = self
            .goals
            .iter()
            .map(|g| json!({"goal": g.name, "wanted": g.wanted, "actual": g.actual, "met": g.met}))
            .collect();
        json!({
            "machine": machine,
            "command": command,
            "results": Value::Object(self.values.clone()),
            "goals": goals,
            "errors": self.errors,
        })
    }
}
