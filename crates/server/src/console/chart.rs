//! Line charts as inline SVG (no script, no external file): series of per-minute values drawn
//! to a fixed view box, a gap where a value is missing (a value alone is a dot), the y axis rounded up to a readable
//! maximum.

use std::fmt::Write;

/// The view box, and the room kept on the left for the y axis's labels.
const WIDTH: f64 = 600.0;
const HEIGHT: f64 = 160.0;
const LEFT: f64 = 48.0;
const TOP: f64 = 8.0;
const BOTTOM: f64 = 20.0;

/// One named line: a value per x step (`None` leaves a gap).
pub struct Series {
    pub name: String,
    pub values: Vec<Option<f64>>,
}

/// A drawn line: its name and SVG path data.
pub struct Line {
    pub name: String,
    pub path: String,
}

/// A chart ready for the template.
pub struct Chart {
    pub width: f64,
    pub height: f64,
    pub left: f64,
    pub top: f64,
    /// The plot's bottom edge (the x axis).
    pub base: f64,
    /// The y axis's top value, as shown.
    pub y_max: String,
    pub lines: Vec<Line>,
}

impl Chart {
    /// Draws `series` (all of the same length) on one y scale from 0 to a round maximum.
    pub fn lines(series: &[Series]) -> Self {
        let steps = series.iter().map(|s| s.values.len()).max().unwrap_or(0);
        let highest = series
            .iter()
            .flat_map(|s| s.values.iter().flatten())
            .fold(0.0_f64, |m, v| m.max(*v));
        let y_max = round_up(highest);
        let lines = series
            .iter()
            .map(|s| Line {
                name: s.name.clone(),
                path: path(&s.values, steps, y_max),
            })
            .collect();
        Self {
            width: WIDTH,
            height: HEIGHT,
            left: LEFT,
            top: TOP,
            base: HEIGHT - BOTTOM,
            y_max: format_value(y_max),
            lines,
        }
    }
}

/// The smallest of 1, 2, 5 × 10ⁿ at or above `v` (1 for nothing at all).
fn round_up(v: f64) -> f64 {
    if v <= 1.0 {
        return 1.0;
    }
    let magnitude = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|top| *top >= v)
        .unwrap_or(10.0 * magnitude)
}

fn format_value(v: f64) -> String {
    if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v}")
    }
}

/// SVG path data of one series: `M` where a run of values starts, `L` to each next value.
fn path(values: &[Option<f64>], steps: usize, y_max: f64) -> String {
    let x_step = (WIDTH - LEFT) / (steps.saturating_sub(1).max(1)) as f64;
    let plot_height = HEIGHT - BOTTOM - TOP;
    let mut d = String::new();
    for (i, v) in values.iter().enumerate() {
        let Some(v) = v else { continue };
        let x = LEFT + x_step * i as f64;
        let y = TOP + plot_height * (1.0 - (v / y_max).clamp(0.0, 1.0));
        let after_gap = i == 0 || values[i - 1].is_none();
        let command = if after_gap { 'M' } else { 'L' };
        let _ = write!(d, "{}{command}{x:.1},{y:.1}", if d.is_empty() { "" } else { " " });
        if after_gap && values.get(i + 1).is_none_or(Option::is_none) {
            // A value alone between gaps: a dot (the line's round cap on a zero-length stroke).
            d.push_str(" h0");
        }
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_y_axis_is_rounded_up_to_one_two_or_five() {
        let cases = [
            (0.0, 1.0),
            (0.4, 1.0),
            (3.0, 5.0),
            (7.0, 10.0),
            (10.0, 10.0),
            (11.0, 20.0),
            (420.0, 500.0),
        ];
        for (v, top) in cases {
            assert_eq!(round_up(v), top, "{v}");
        }
    }

    #[test]
    fn a_missing_value_breaks_the_line() {
        let chart = Chart::lines(&[Series {
            name: "vana".into(),
            values: vec![Some(0.0), Some(10.0), None, Some(5.0), Some(10.0)],
        }]);
        assert_eq!(chart.y_max, "10");
        let base = HEIGHT - BOTTOM;
        let step = (WIDTH - LEFT) / 4.0;
        let expected = format!(
            "M{LEFT:.1},{base:.1} L{:.1},{TOP:.1} M{:.1},{:.1} L{WIDTH:.1},{TOP:.1}",
            LEFT + step,
            LEFT + 3.0 * step,
            TOP + (base - TOP) / 2.0,
        );
        assert_eq!(chart.lines[0].path, expected);
    }

    #[test]
    fn a_value_alone_is_a_dot() {
        let chart = Chart::lines(&[Series {
            name: "vana".into(),
            values: vec![None, Some(1.0), None, Some(1.0)],
        }]);
        let step = (WIDTH - LEFT) / 3.0;
        assert_eq!(
            chart.lines[0].path,
            format!("M{:.1},{TOP:.1} h0 M{WIDTH:.1},{TOP:.1} h0", LEFT + step)
        );
    }

    #[test]
    fn every_point_is_inside_the_plot() {
        let chart = Chart::lines(&[
            Series {
                name: "a".into(),
                values: (0..60).map(|i| Some(f64::from(i * 37 % 101))).collect(),
            },
            Series {
                name: "b".into(),
                values: vec![None; 60],
            },
        ]);
        assert_eq!(chart.lines[1].path, "", "no value, no line");
        for point in chart.lines[0].path.split(' ') {
            let (x, y) = point[1..].split_once(',').unwrap();
            let (x, y): (f64, f64) = (x.parse().unwrap(), y.parse().unwrap());
            assert!(
                (LEFT..=WIDTH).contains(&x) && (TOP..=HEIGHT - BOTTOM).contains(&y),
                "{point}"
            );
        }
    }
}
