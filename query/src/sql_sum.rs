//! SQL's `sum` over 64-bit integers saturating at ±(2^63 − 1), as every
//! other sum in Ignis does: DataFusion's built-in `sum` wraps, so two
//! samples of 2^62 would sum to a negative number. Other argument types
//! (floats, decimals, unsigned) and `sum(DISTINCT …)` use the built-in.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray};
use datafusion::arrow::datatypes::{DataType, FieldRef, Int64Type};
use datafusion::common::{Result, ScalarValue};
use datafusion::functions_aggregate::sum::sum_udaf;
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::utils::AggregateOrderSensitivity;
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, Documentation, GroupsAccumulator, ReversedUDAF,
    SetMonotonicity, Signature,
};
use datafusion_functions_aggregate_common::aggregate::groups_accumulator::prim_op::PrimitiveGroupsAccumulator;

/// `sum` as a UDF to register on a session (replacing the built-in).
pub fn saturating_sum() -> AggregateUDF {
    AggregateUDF::new_from_impl(SaturatingSum { inner: sum_udaf() })
}

/// The built-in `sum`, with saturating accumulators for `Int64`.
#[derive(Debug, PartialEq, Eq, Hash)]
struct SaturatingSum {
    inner: Arc<AggregateUDF>,
}

impl SaturatingSum {
    fn builtin(&self) -> &dyn AggregateUDFImpl {
        self.inner.inner().as_ref()
    }
}

/// True when the accumulator sums `Int64` values (not distinct ones).
fn saturates(args: &AccumulatorArgs) -> bool {
    !args.is_distinct && args.return_field.data_type() == &DataType::Int64
}

impl AggregateUDFImpl for SaturatingSum {
    fn name(&self) -> &str {
        self.builtin().name()
    }

    fn signature(&self) -> &Signature {
        self.builtin().signature()
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        self.builtin().return_type(arg_types)
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        self.builtin().coerce_types(arg_types)
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        if saturates(&args) {
            return Ok(Box::new(SumI64::default()));
        }
        self.builtin().accumulator(args)
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        self.builtin().state_fields(args)
    }

    fn groups_accumulator_supported(&self, args: AccumulatorArgs) -> bool {
        self.builtin().groups_accumulator_supported(args)
    }

    fn create_groups_accumulator(
        &self,
        args: AccumulatorArgs,
    ) -> Result<Box<dyn GroupsAccumulator>> {
        if saturates(&args) {
            return Ok(Box::new(PrimitiveGroupsAccumulator::<Int64Type, _>::new(
                &DataType::Int64,
                |x, y| *x = x.saturating_add(y),
            )));
        }
        self.builtin().create_groups_accumulator(args)
    }

    fn create_sliding_accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        self.builtin().create_sliding_accumulator(args)
    }

    fn order_sensitivity(&self) -> AggregateOrderSensitivity {
        self.builtin().order_sensitivity()
    }

    fn reverse_expr(&self) -> ReversedUDAF {
        self.builtin().reverse_expr()
    }

    fn default_value(&self, data_type: &DataType) -> Result<ScalarValue> {
        self.builtin().default_value(data_type)
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.builtin().documentation()
    }

    fn set_monotonicity(&self, data_type: &DataType) -> SetMonotonicity {
        self.builtin().set_monotonicity(data_type)
    }
}

/// A saturating `Int64` sum: NULL until it has seen a value.
#[derive(Debug, Default)]
struct SumI64 {
    sum: Option<i64>,
}

impl SumI64 {
    fn add(&mut self, values: &ArrayRef) {
        let values = values.as_primitive::<Int64Type>();
        if values.null_count() == values.len() {
            return;
        }
        let mut sum = self.sum.unwrap_or(0);
        for v in values.iter().flatten() {
            sum = sum.saturating_add(v);
        }
        self.sum = Some(sum);
    }
}

impl Accumulator for SumI64 {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        if let Some(v) = values.first() {
            self.add(v);
        }
        Ok(())
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        self.update_batch(states)
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        Ok(vec![ScalarValue::Int64(self.sum)])
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        Ok(ScalarValue::Int64(self.sum))
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::Int64Array;
    use datafusion::arrow::datatypes::{Field, Schema};
    use datafusion::arrow::record_batch::RecordBatch;
    use datafusion::datasource::MemTable;
    use datafusion::prelude::SessionContext;

    #[tokio::test]
    async fn sums_of_int64_saturate_grouped_or_not() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("g", DataType::Int64, false),
            Field::new("v", DataType::Int64, true),
        ]));
        let big = 1i64 << 62;
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from(vec![1, 1, 2, 2, 3])),
                Arc::new(Int64Array::from(vec![
                    Some(big),
                    Some(big),
                    Some(-big),
                    Some(-big - big),
                    None,
                ])),
            ],
        )
        .unwrap();
        let ctx = SessionContext::new();
        ctx.register_udaf(saturating_sum());
        ctx.register_table(
            "t",
            Arc::new(MemTable::try_new(schema, vec![vec![batch]]).unwrap()),
        )
        .unwrap();
        let rows = |sql: &'static str| {
            let ctx = ctx.clone();
            async move {
                let batches = ctx.sql(sql).await.unwrap().collect().await.unwrap();
                let mut out = Vec::new();
                for b in batches {
                    let c = b
                        .column(b.num_columns() - 1)
                        .as_primitive::<Int64Type>()
                        .clone();
                    out.extend(c.iter());
                }
                out
            }
        };
        assert_eq!(
            rows("SELECT sum(v) FROM t WHERE g = 1").await,
            vec![Some(i64::MAX)]
        );
        assert_eq!(
            rows("SELECT g, sum(v) FROM t GROUP BY g ORDER BY g").await,
            vec![Some(i64::MAX), Some(i64::MIN), None]
        );
        // Sums that fit are exact; floats still use the built-in.
        assert_eq!(rows("SELECT sum(g) FROM t").await, vec![Some(9)]);
        let f = ctx
            .sql("SELECT sum(CAST(v AS DOUBLE)) FROM t")
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        assert_eq!(f[0].column(0).data_type(), &DataType::Float64);
    }
}
