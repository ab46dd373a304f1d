// A node's output as a person reads it: a few sample records, what each cleaning operator
// kept and dropped (by reason, with samples of the dropped records), and the whole output
// as JSON for the rest (counts, labels, a condition's result…).
import type { JsonObject } from "../types";

interface OperatorStep {
  index: number;
  name: string;
  kind: string;
  in: number;
  kept: number;
  dropped: Record<string, number>;
  samples: Record<string, unknown[]>;
}

function isObject(value: unknown): value is JsonObject {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function operatorSteps(output: JsonObject): OperatorStep[] {
  const operators = output.operators;
  if (!isObject(operators) || !Array.isArray(operators.steps)) return [];
  return operators.steps.filter(isObject) as unknown as OperatorStep[];
}

function text(value: unknown): string {
  return typeof value === "string" ? value : JSON.stringify(value);
}

/** Records as a table of their fields (the first few fields of the first records). */
function Records({ records, label }: { records: unknown[]; label: string }) {
  const objects = records.filter(isObject);
  if (objects.length < records.length || objects.length === 0) {
    return (
      <ol className="dm-records-raw" aria-label={label}>
        {records.map((record, index) => (
          <li key={index}>
            <code>{text(record)}</code>
          </li>
        ))}
      </ol>
    );
  }
  const fields = [...new Set(objects.flatMap((record) => Object.keys(record)))].slice(0, 6);
  return (
    <div className="dm-table-wrap">
      <table className="dm-records" aria-label={label}>
        <thead>
          <tr>
            {fields.map((field) => (
              <th key={field}>{field}</th>
            ))}
          </tr>
        </thead>
        <tbody>
          {objects.map((record, index) => (
            <tr key={index}>
              {fields.map((field) => (
                <td key={field} title={text(record[field] ?? "")}>
                  {record[field] === undefined ? "" : text(record[field]).slice(0, 200)}
                </td>
              ))}
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

export function NodeOutput({ output }: { output: unknown }) {
  if (!isObject(output)) {
    return output == null ? null : <pre className="dm-json">{JSON.stringify(output, null, 2)}</pre>;
  }
  const samples = Array.isArray(output.samples) ? output.samples : [];
  const steps = operatorSteps(output);
  return (
    <div className="dm-output">
      {typeof output.count === "number" && (
        <p className="dm-output-count">
          <strong>{output.count}</strong> records
          {Array.isArray(output.fields) && output.fields.length > 0 && (
            <> · fields {output.fields.map((f) => (isObject(f) ? String(f.name ?? "") : String(f))).join(", ")}</>
          )}
        </p>
      )}
      {samples.length > 0 && (
        <section className="dm-output-samples">
          <h4>Sample records</h4>
          <Records records={samples} label="Sample records" />
        </section>
      )}
      {steps.length > 0 && (
        <section className="dm-output-operators">
          <h4>Operators</h4>
          <table className="dm-operator-counts">
            <thead>
              <tr>
                <th>Operator</th>
                <th>In</th>
                <th>Kept</th>
                <th>Dropped</th>
              </tr>
            </thead>
            <tbody>
              {steps.map((step) => (
                <tr key={step.index} data-operator={step.name}>
                  <td>
                    {step.name} <span className={`dm-kind kind-${step.kind}`}>{step.kind}</span>
                  </td>
                  <td>{step.in}</td>
                  <td>{step.kept}</td>
                  <td>
                    {Object.entries(step.dropped ?? {}).length === 0
                      ? "0"
                      : Object.entries(step.dropped)
                          .map(([reason, count]) => `${count} ${reason}`)
                          .join(", ")}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
          {steps
            .filter((step) => Object.keys(step.samples ?? {}).length > 0)
            .map((step) => (
              <details key={step.index} className="dm-dropped" open>
                <summary>
                  Dropped by {step.name}
                  {Object.entries(step.dropped ?? {}).map(([reason, count]) => ` · ${reason}: ${count}`)}
                </summary>
                {Object.entries(step.samples).map(([reason, records]) => (
                  <div key={reason} className="dm-dropped-reason" data-reason={reason}>
                    <h5>{reason}</h5>
                    <Records records={records} label={`Dropped by ${step.name}: ${reason}`} />
                  </div>
                ))}
              </details>
            ))}
        </section>
      )}
      <details className="dm-output-json">
        <summary>Whole output (JSON)</summary>
        <pre className="dm-json">{JSON.stringify(output, null, 2)}</pre>
      </details>
    </div>
  );
}
