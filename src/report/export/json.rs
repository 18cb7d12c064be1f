//! JSON: the whole report as one document, for other tools.

use super::Exporter;
use crate::report::Report;

pub struct JsonExporter;

impl Exporter for JsonExporter {
    fn render(&self, r: &Report) -> Vec<u8> {
        // The report holds only strings, numbers and plain structs: serialising cannot fail.
        let mut v = serde_json::to_vec_pretty(r).expect("report serialises");
        v.push(b'\n');
        v
    }
}
