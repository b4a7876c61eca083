//! Bounds on a SQL query's shape and functions, checked before DataFusion
//! plans it.
//!
//! DataFusion's planner, optimizer and executor recurse over expression and
//! plan trees. The SQL parser bounds nesting (parentheses, subqueries), but a
//! flat chain (`1+1+…+1`, `… UNION ALL …`, many joins) parses into a tree as
//! deep as it is long: 2 000 terms overflowed a thread's stack, which aborts
//! the whole process. Some functions build values whose size an argument
//! sets, not the data (`repeat('x', 2000000000)`), outside the query's
//! memory limit: they are not offered.

use std::ops::ControlFlow;

use datafusion::sql::parser::{DFParser, Statement as DfStatement};
use datafusion::sql::sqlparser::ast::{Expr, Query, SetExpr, Visit, Visitor};
use datafusion::sql::sqlparser::dialect::GenericDialect;

use crate::error::QueryError;

/// The longest SQL text accepted, in bytes.
pub const MAX_SQL_BYTES: usize = 64 * 1024;
/// The deepest expression accepted (operators, function calls and
/// subqueries nested in one another).
pub const MAX_EXPR_DEPTH: usize = 256;
/// The most set operations (`UNION`, `INTERSECT`, `EXCEPT`) in one query.
pub const MAX_SET_OPERATIONS: usize = 64;
/// The most tables one `FROM` joins (by `JOIN` or by commas).
pub const MAX_JOINS: usize = 64;

/// Functions whose result size an argument sets rather than the data read:
/// removed from every SQL session (their aliases with them).
pub const UNBOUNDED_FUNCTIONS: [&str; 7] = [
    "repeat",
    "lpad",
    "rpad",
    "array_repeat",
    "array_resize",
    "range",
    "generate_series",
];

/// Checks `sql` against the bounds above. Text that does not parse passes:
/// DataFusion reports its syntax error. Needs a few MiB of stack to drop
/// the parse of a long flat chain (the SQL runtime's threads have it).
pub fn check_sql_shape(sql: &str) -> Result<(), QueryError> {
    if sql.len() > MAX_SQL_BYTES {
        return Err(QueryError::invalid(format!(
            "the SQL text is {} bytes; at most {MAX_SQL_BYTES} are accepted",
            sql.len()
        )));
    }
    let Ok(statements) = DFParser::parse_sql_with_dialect(sql, &GenericDialect {}) else {
        return Ok(());
    };
    let mut shape = Shape::default();
    for s in &statements {
        if let ControlFlow::Break(message) = visit_statement(s, &mut shape) {
            return Err(QueryError::invalid(message));
        }
    }
    Ok(())
}

fn visit_statement(s: &DfStatement, shape: &mut Shape) -> ControlFlow<String> {
    match s {
        DfStatement::Statement(s) => s.visit(shape),
        DfStatement::Explain(e) => visit_statement(&e.statement, shape),
        _ => ControlFlow::Break("only queries (SELECT, WITH, EXPLAIN) are accepted".into()),
    }
}

/// The visitor: the depth of the expression being visited.
#[derive(Default)]
struct Shape {
    depth: usize,
}

impl Visitor for Shape {
    type Break = String;

    fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<String> {
        // Iterative: the chain may be longer than a recursion could follow.
        let (mut set_operations, mut joins) = (0usize, 0usize);
        let mut bodies = vec![query.body.as_ref()];
        while let Some(body) = bodies.pop() {
            match body {
                SetExpr::SetOperation { left, right, .. } => {
                    set_operations += 1;
                    bodies.push(left);
                    bodies.push(right);
                }
                SetExpr::Select(select) => {
                    let tables: usize = select.from.iter().map(|t| 1 + t.joins.len()).sum();
                    joins = joins.max(tables.saturating_sub(1));
                }
                _ => {}
            }
        }
        if set_operations > MAX_SET_OPERATIONS {
            return ControlFlow::Break(format!(
                "the query chains {set_operations} set operations (UNION, INTERSECT, EXCEPT); at most {MAX_SET_OPERATIONS} are accepted"
            ));
        }
        if joins > MAX_JOINS {
            return ControlFlow::Break(format!(
                "a FROM joins {} tables; at most {} are accepted",
                joins + 1,
                MAX_JOINS + 1
            ));
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<String> {
        self.depth += 1;
        if self.depth > MAX_EXPR_DEPTH {
            return ControlFlow::Break(format!(
                "an expression is nested more than {MAX_EXPR_DEPTH} deep (operators, calls and subqueries within one another)"
            ));
        }
        if let Expr::Function(f) = expr {
            let name = f.name.to_string().to_lowercase();
            if UNBOUNDED_FUNCTIONS.contains(&name.as_str()) {
                return ControlFlow::Break(format!(
                    "the function {name} is not available in SQL: an argument, not the data, sets the size of its result"
                ));
            }
        }
        ControlFlow::Continue(())
    }

    fn post_visit_expr(&mut self, _expr: &Expr) -> ControlFlow<String> {
        self.depth = self.depth.saturating_sub(1);
        ControlFlow::Continue(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `f` on a thread with the SQL runtime's stack.
    fn on_sql_stack<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
        std::thread::Builder::new()
            .stack_size(crate::executor::SQL_THREAD_STACK_BYTES)
            .spawn(f)
            .expect("a thread starts")
            .join()
            .expect("no panic")
    }

    fn refused(sql: String) -> String {
        on_sql_stack(move || check_sql_shape(&sql))
            .expect_err("refused")
            .to_string()
    }

    #[test]
    fn ordinary_queries_pass() {
        for sql in [
            "SELECT service_name, sum(total) FROM profiles GROUP BY 1 ORDER BY 2 DESC LIMIT 10",
            "WITH t AS (SELECT * FROM samples WHERE value > 0) SELECT count(*) FROM t",
            "EXPLAIN SELECT 1 + 2 * 3",
            "SELECT a.x FROM (SELECT 1 AS x) a JOIN (SELECT 1 AS x) b ON a.x = b.x",
            "SELECT 1 UNION ALL SELECT 2",
            "not sql at all",
        ] {
            assert!(check_sql_shape(sql).is_ok(), "{sql}");
        }
        let terms = vec!["1"; MAX_EXPR_DEPTH].join("+");
        assert!(check_sql_shape(&format!("SELECT {terms}")).is_ok());
    }

    #[test]
    fn long_chains_are_refused_before_planning() {
        // A flat chain as long as the text allows: the parse is as deep,
        // and is dropped on the SQL runtime's stack.
        let n = MAX_SQL_BYTES / 2 - 8;
        let e = refused(format!("SELECT {}", vec!["1"; n].join("+")));
        assert!(e.contains("nested more than 256 deep"), "{e}");
        let e = refused(format!("SELECT {}", vec!["1"; 2000].join(" AND ")));
        assert!(e.contains("nested"), "{e}");
        let e = refused(vec!["SELECT 1"; 2000].join(" UNION ALL "));
        assert!(e.contains("set operations"), "{e}");
        let tables: Vec<String> = (0..100).map(|i| format!("profiles t{i}")).collect();
        let e = refused(format!("SELECT count(*) FROM {}", tables.join(", ")));
        assert!(e.contains("joins 100 tables"), "{e}");
        let e = refused(format!("SELECT {}", "x".repeat(MAX_SQL_BYTES)));
        assert!(e.contains("bytes"), "{e}");
    }

    #[test]
    fn functions_sized_by_an_argument_are_refused() {
        for sql in [
            "SELECT length(repeat('x', 2000000000))",
            "SELECT LPAD('x', 300000000)",
            "SELECT unnest(generate_series(1, 200000000)) LIMIT 1",
            "SELECT count(*) FROM profiles WHERE total > length(rpad('', 1000000000))",
        ] {
            let e = refused(sql.to_string());
            assert!(e.contains("not available in SQL"), "{sql}: {e}");
        }
    }
}
