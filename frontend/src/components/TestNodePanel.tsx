// Test node: runs just this node on a worker (POST …/nodes/<key>/test/) with the config
// shown in the panel, saved or not, and the inputs of the pipeline's last finished run;
// then shows its output, log lines and error here. A test that outlasts the request
// answers 202, and its result is fetched until it is there.
import { useEffect, useRef, useState } from "react";
import { ApiError } from "../api";
import { useEditor } from "../context";
import { errorSchemaUnder, parameterDefaults } from "../forms";
import type { FieldError, JsonObject, NodeTestPending, NodeTestResult, ParameterDefinition } from "../types";
import { ErrorList } from "./ErrorList";
import { NodeOutput } from "./NodeOutput";
import { RunParametersForm } from "./RunParametersForm";

const WAIT_SECONDS = 10;
const POLL_MS = 1000;

interface Props {
  nodeKey: string;
  config: JsonObject;
  /** The saved pipeline's parameters: the test resolves `{{ params.x }}` with these. */
  definitions: ParameterDefinition[];
}

export function TestNodePanel({ nodeKey, config, definitions }: Props) {
  const editor = useEditor();
  const [running, setRunning] = useState(false);
  const [result, setResult] = useState<NodeTestResult | null>(null);
  const [errors, setErrors] = useState<FieldError[]>([]);
  const [params, setParams] = useState<JsonObject>(() => parameterDefaults(definitions));
  // A test whose answer arrives after the panel moved on to another node is dropped.
  const attempt = useRef(0);
  useEffect(() => {
    attempt.current += 1;
    setResult(null);
    setErrors([]);
    setRunning(false);
  }, [nodeKey]);

  // The answer comes at the foot of a long panel: bring it into view.
  const answer = useRef<HTMLDivElement>(null);
  useEffect(() => {
    answer.current?.scrollIntoView({ block: "nearest", behavior: "smooth" });
  }, [result, errors]);

  const test = async () => {
    if (!editor) return;
    const mine = ++attempt.current;
    setRunning(true);
    setResult(null);
    setErrors([]);
    try {
      let answer = await editor.api.post<NodeTestResult | NodeTestPending>(editor.urls.nodeTest(nodeKey), {
        config,
        params,
        wait: WAIT_SECONDS,
      });
      while (answer.status === 202 && attempt.current === mine) {
        await new Promise((resolve) => window.setTimeout(resolve, POLL_MS));
        answer = await editor.api.get<NodeTestResult | NodeTestPending>((answer.data as NodeTestPending).result_url);
      }
      if (attempt.current === mine) setResult(answer.data as NodeTestResult);
    } catch (error) {
      if (attempt.current !== mine) return;
      if (!(error instanceof ApiError)) throw error;
      if (error.status === 404) {
        setErrors([{ field: "", message: "This node is not saved yet: save the pipeline, then test the node." }]);
      } else {
        setErrors(error.errors);
      }
    } finally {
      if (attempt.current === mine) setRunning(false);
    }
  };

  const paramErrors = errorSchemaUnder(errors, "params.");
  const otherErrors = errors.filter((e) => !e.field.startsWith("params."));
  return (
    <section className="dm-test" aria-label="Test node">
      <h3>Test</h3>
      <p className="muted small">
        Runs this node alone on a worker, with the config above (saved or not) and the inputs of the last finished run.
        Nothing is saved.
      </p>
      {definitions.length > 0 && (
        <details className="dm-test-params" open={Object.keys(paramErrors).length > 0 || undefined}>
          <summary>Parameters for the test</summary>
          <RunParametersForm
            id="test_params"
            definitions={definitions}
            value={params}
            serverErrors={paramErrors}
            onChange={setParams}
          />
        </details>
      )}
      <button type="button" id="test-node" disabled={running} onClick={test}>
        {running ? "Testing…" : "Test node"}
      </button>
      <div ref={answer} className="dm-test-answer">
        <ErrorList errors={otherErrors} />
        {result && (
          <div className="dm-test-result" data-outcome={result.error ? "failed" : "succeeded"}>
            <p>
              <span className={`badge state-${result.error ? "failed" : "succeeded"}`}>
                {result.error ? "failed" : "succeeded"}
              </span>{" "}
              in {result.duration_ms} ms · {result.records_in ?? "–"} records in, {result.records_out ?? "–"} out
              {result.handles && result.handles.length > 0 && <> · continues on {result.handles.join(", ")}</>}
            </p>
            <p className="muted small">
              {result.inputs_from_run
                ? `Inputs: the upstream outputs of run #${result.inputs_from_run}.`
                : "Inputs: none (no finished run has outputs upstream of this node)."}
            </p>
            {result.error && <div className="error-box dm-test-error">{result.error}</div>}
            <NodeOutput output={result.output} />
            <h4>Logs</h4>
            <ol className="logs dm-test-logs">
              {result.logs.length === 0 && <li className="empty-logs">No log lines.</li>}
              {result.logs.map((log, index) => (
                <li key={index} className={`log level-${log.level}`}>
                  <time>{log.seconds.toFixed(2)} s</time>
                  <span className="log-level">{log.level}</span>
                  <span className="log-msg">{log.message}</span>
                </li>
              ))}
            </ol>
          </div>
        )}
      </div>
    </section>
  );
}
