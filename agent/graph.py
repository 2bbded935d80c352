"""The investigation graph, top to bottom.

    START → intake → route ──(Send per planned call)──▶ query ──▶ expand
                                                          ▲         │
                           queries that use other queries' results  │
                                                          └─────────┤ (nothing left)
                                                                    ▼
                            query ◀──(Send per model follow-up)── diagnose
                                                                    │ (no follow-up)
                                                                    ▼
                                          propose → govern → act → finalize ──▶ END
                                                                   ▲           │ (approvals pending)
                                                                   └── wait ◀──┘  interrupt()
"""

from __future__ import annotations

from typing import Any

from langgraph.graph import END, START, StateGraph

from agent.context import AgentContext
from agent.nodes.diagnose import after_diagnose, diagnose
from agent.nodes.finalize import finalize, propose
from agent.nodes.gather import after_expand, expand, fan_out, query
from agent.nodes.govern import act, after_finalize, govern, wait
from agent.nodes.intake import intake
from agent.nodes.route import route
from agent.state import InvestigationState


def build_graph() -> StateGraph[InvestigationState, AgentContext, Any, Any]:
    """Return the (uncompiled) investigation graph."""
    graph: StateGraph[InvestigationState, AgentContext, Any, Any] = StateGraph(
        InvestigationState, context_schema=AgentContext)
    graph.add_node("intake", intake)
    graph.add_node("route", route)
    graph.add_node("query", query)  # type: ignore[call-overload]  # its input comes by Send
    graph.add_node("expand", expand)
    graph.add_node("diagnose", diagnose)
    graph.add_node("propose", propose)
    graph.add_node("govern", govern)
    graph.add_node("act", act)
    graph.add_node("finalize", finalize)
    graph.add_node("wait", wait)

    graph.add_edge(START, "intake")
    graph.add_edge("intake", "route")
    graph.add_conditional_edges("route", fan_out, ["query", "expand"])
    graph.add_edge("query", "expand")
    graph.add_conditional_edges("expand", after_expand, ["query", "expand", "diagnose"])
    graph.add_conditional_edges("diagnose", after_diagnose, ["query", "propose"])
    graph.add_edge("propose", "govern")
    graph.add_edge("govern", "act")
    graph.add_edge("act", "finalize")
    graph.add_conditional_edges("finalize", after_finalize, ["wait", END])
    graph.add_edge("wait", "act")
    return graph
