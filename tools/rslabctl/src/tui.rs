// SPDX-License-Identifier: GPL-2.0

//! The live view of `rslabctl top`, drawn with ratatui: the summary, the
//! caches table and the pools table, refreshed every `delay`.
//!
//! Keys: `q` or Esc quits; `s` cycles the sort column; `n`, `o`, `a`, `u`,
//! `z`, `b`, `m`, `r`, `f` sort by name, objects, active, use, size, slabs,
//! memory, alloc rate, free rate.

use crate::top::{self, SortKey};
use anyhow::Result;
use ratatui::crossterm::event::{self, Event, KeyCode, KeyEventKind};
use ratatui::layout::{Constraint, Layout};
use ratatui::style::{Modifier, Style};
use ratatui::text::Line;
use ratatui::widgets::{Block, Paragraph, Row, Table};
use ratatui::Frame;
use std::path::Path;
use std::time::{Duration, Instant};

/// The sort key a key press picks, if any.
fn sort_key(code: KeyCode, current: SortKey) -> Option<SortKey> {
    Some(match code {
        KeyCode::Char('s') => current.next(),
        KeyCode::Char('n') => SortKey::Name,
        KeyCode::Char('o') => SortKey::Objs,
        KeyCode::Char('a') => SortKey::Active,
        KeyCode::Char('u') => SortKey::Use,
        KeyCode::Char('z') => SortKey::Size,
        KeyCode::Char('b') => SortKey::Slabs,
        KeyCode::Char('m') => SortKey::Memory,
        KeyCode::Char('r') => SortKey::Allocs,
        KeyCode::Char('f') => SortKey::Frees,
        _ => return None,
    })
}

/// A table widget of `header` and `cells`, columns sized to fit.
fn table<'a>(title: String, header: &'a [&'a str], cells: Vec<Vec<String>>) -> Table<'a> {
    let widths: Vec<Constraint> = header
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let widest = cells.iter().map(|r| r[i].len()).max().unwrap_or(0);
            Constraint::Length(widest.max(h.len()) as u16)
        })
        .collect();
    let bold = Style::default().add_modifier(Modifier::BOLD | Modifier::REVERSED);
    Table::new(cells.into_iter().map(Row::new), widths)
        .header(Row::new(header.iter().copied()).style(bold))
        .block(Block::bordered().title(title))
}

fn draw(frame: &mut Frame, prev: Option<&top::Sample>, cur: &top::Sample, key: SortKey) {
    let views = top::views(prev, cur, key);
    let summary: Vec<Line> = top::summary(&views, &cur.pools)
        .into_iter()
        .map(Line::from)
        .collect();
    let pools_height = cur.pools.len() as u16 + 3;
    let [head, caches, pools] = Layout::vertical([
        Constraint::Length(summary.len() as u16 + 1),
        Constraint::Min(5),
        Constraint::Length(pools_height),
    ])
    .areas(frame.area());
    frame.render_widget(Paragraph::new(summary), head);
    let title = format!(" caches, sorted by {key:?} (s: next column, q: quit) ");
    let cache_cells = top::cache_cells(&views);
    frame.render_widget(table(title, &top::CACHE_HEADER, cache_cells), caches);
    let pool_cells = top::pool_cells(&cur.pools);
    frame.render_widget(
        table(" pools ".into(), &top::POOL_HEADER, pool_cells),
        pools,
    );
}

/// Runs the live view until `q`.
pub fn run(root: &Path, mut key: SortKey, delay: Duration) -> Result<()> {
    let mut terminal = ratatui::init();
    let result = (|| -> Result<()> {
        let mut prev: Option<top::Sample> = None;
        let mut cur = top::sample(root)?;
        loop {
            terminal.draw(|f| draw(f, prev.as_ref(), &cur, key))?;
            let deadline = Instant::now() + delay;
            while let Some(left) = deadline.checked_duration_since(Instant::now()) {
                if !event::poll(left)? {
                    break;
                }
                let Event::Key(k) = event::read()? else {
                    continue;
                };
                if k.kind != KeyEventKind::Press {
                    continue;
                }
                if matches!(k.code, KeyCode::Char('q') | KeyCode::Esc) {
                    return Ok(());
                }
                if let Some(new) = sort_key(k.code, key) {
                    key = new;
                    terminal.draw(|f| draw(f, prev.as_ref(), &cur, key))?;
                }
            }
            prev = Some(std::mem::replace(&mut cur, top::sample(root)?));
        }
    })();
    ratatui::restore();
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_pick_sort_columns() {
        assert_eq!(
            sort_key(KeyCode::Char('z'), SortKey::Objs),
            Some(SortKey::Size)
        );
        assert_eq!(
            sort_key(KeyCode::Char('s'), SortKey::Objs),
            Some(SortKey::Active)
        );
        assert_eq!(sort_key(KeyCode::Char('x'), SortKey::Objs), None);
    }
}
