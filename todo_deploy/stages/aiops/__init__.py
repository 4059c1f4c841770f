"""Stage 5, `inv aiops`: the AI tools (kubectl-ai, kagent, Gordon) and the built-in doctor.

- `adapters`: the three tools' real command lines, run through the Runner.
- `playbooks`: named sets of prompts sent to every available tool.
- `doctor`: pure diagnosis rules over Kubernetes objects, plus the collector.
- `stage`: `run(loaded, playbook, ...) -> GateResult`; only the doctor decides the gate.
"""
