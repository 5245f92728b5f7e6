"""Talking to the server as a caller: start, find, list and wait for workflows.

Public surface::

    Client                 the connection to one server and namespace
    WorkflowHandle         one workflow: result(), describe(), cancel(), terminate(), history()
    WorkflowDescription    describe() answers
    WorkflowListPage       list_workflows() answers, rows are WorkflowSummary
    Transport              the seam every request goes through
    AiohttpTransport       the production transport
    MockTransport          answers requests with a function, for unit tests (with Request, Response)
    NetworkError, RequestTimeout   what a transport raises (both errors.TransportError)
    HttpApi                the JSON layer (headers, retries, error mapping) the worker shares

Exceptions are in :mod:`durable_workflow.errors`.
"""

from durable_workflow.client._client import Client
from durable_workflow.client._handle import WorkflowHandle
from durable_workflow.client._http import HttpApi
from durable_workflow.client._transport import (
    AiohttpTransport,
    MockTransport,
    NetworkError,
    Request,
    RequestTimeout,
    Response,
    Transport,
)
from durable_workflow.client._types import WorkflowDescription, WorkflowListPage, WorkflowSummary

__all__ = [
    "AiohttpTransport",
    "Client",
    "HttpApi",
    "MockTransport",
    "NetworkError",
    "Request",
    "RequestTimeout",
    "Response",
    "Transport",
    "WorkflowDescription",
    "WorkflowHandle",
    "WorkflowListPage",
    "WorkflowSummary",
]
