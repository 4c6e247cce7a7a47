"""The MCP tools: each a thin wrapper over the service function its REST endpoint calls."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.tools import Tool
from mcp_types import ToolAnnotations
from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncSession

from kaanha import __version__
from kaanha.ai_agents import service as ai_agents
from kaanha.ai_agents.schemas import AgentOut
from kaanha.analytics import service as analytics
from kaanha.analytics.schemas import AnalyticsOut
from kaanha.auth.principal import Principal
from kaanha.broadcasts import service as broadcasts
from kaanha.broadcasts.schemas import BroadcastCreate, BroadcastOut
from kaanha.contacts import service as contacts
from kaanha.contacts.schemas import ContactCreate, ContactOut
from kaanha.conversations import service as conversations
from kaanha.conversations.schemas import ConversationDetail, ConversationOut, ConversationStatus, ConversationUpdate
from kaanha.errors import KaanhaError
from kaanha.kit.pagination import MAX_LIMIT, Page, PageRequest
from kaanha.kit.schemas import RequestSchema
from kaanha.mcp_server.calls import ToolRunner, flattened, tool_error
from kaanha.mcp_server.media import upload_from_url
from kaanha.media.schemas import MediaOut
from kaanha.messages import service as messages
from kaanha.messages.schemas import MessageOut, SendRequest
from kaanha.payment_links import service as payment_links
from kaanha.payment_links.schemas import PaymentLinkCreate, PaymentLinkOut
from kaanha.quick_replies import service as quick_replies
from kaanha.quick_replies.schemas import QuickReplyOut
from kaanha.runtime import Runtime
from kaanha.templates import service as templates
from kaanha.templates.schemas import TemplateOut

READ = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False)
WRITE = ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=False)
# Fetches from anywhere on the internet, but only adds to our own media store.
FETCH = ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=True)
# Sends reach people outside the platform and can't be taken back.
SEND = ToolAnnotations(read_only_hint=False, destructive_hint=True, idempotent_hint=False, open_world_hint=True)

PageNumber = Annotated[int, Field(ge=1, le=1_000_000, description="Page number, from 1")]
Limit = Annotated[int, Field(ge=1, le=MAX_LIMIT, description=f"Results per page, 1 to {MAX_LIMIT}")]

INSTRUCTIONS = (
    "Kaanha is a WhatsApp Business inbox. Contacts are customers; a conversation is a contact's thread; "
    "messages go out through send_message. WhatsApp's rule: anything but an approved template can be sent only "
    "within 24 hours of the contact's last message (conversation.windowExpiresAt); outside it, send a template "
    "(list_templates). Errors come back as JSON {error, code} with what to do."
)


class AnalyticsQuery(RequestSchema):
    start: str | None = Field(
        default=None,
        alias="from",
        max_length=40,
        description="A date (YYYY-MM-DD, a day in the organization's time zone) or a datetime with its offset; "
        "default 29 days before `to`",
    )
    end: str | None = Field(
        default=None,
        alias="to",
        max_length=40,
        description="A date (included whole) or a datetime with its offset (excluded); default today",
    )
    granularity: Literal["day", "week", "month"] | None = Field(default=None, description="day (default)")


class ConversationChange(ConversationUpdate):
    conversation_id: str = Field(max_length=64, description="The conversation's id")
    status: ConversationStatus | None = Field(
        default=None, description="RESOLVED to close it, OPEN to reopen it (ASSIGNED comes with assigneeId)"
    )
    assignee_id: str | None = Field(default=None, description="A user's id to assign it to; null to unassign")


class MessageQuery(RequestSchema):
    conversation_id: str | None = Field(default=None, max_length=64, description="Only this conversation's")
    page: int = Field(default=1, ge=1, le=1_000_000, description="Page number, from 1")
    limit: int = Field(default=20, ge=1, le=MAX_LIMIT, description=f"Results per page, 1 to {MAX_LIMIT}")


def _clean(value: str | None) -> str | None:
    if value is not None and "\x00" in value:
        raise tool_error(KaanhaError("Filters must not contain NUL characters (\\u0000)"))
    return value.strip() if value and value.strip() else None


def build_server(runtime: Runtime, *, api_key: str | None = None) -> MCPServer:
    """The MCP server with every tool. `api_key` authenticates stdio calls; HTTP calls bring their own."""
    runner = ToolRunner(runtime, api_key=api_key)
    tools: list[Tool] = []

    def tool(
        annotations: ToolAnnotations, *, body: tuple[type[BaseModel], str] | None = None, optional: tuple[str, ...] = ()
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        def register(fn: Callable[..., Any]) -> Callable[..., Any]:
            made = Tool.from_function(fn, annotations=annotations, structured_output=True)
            if body is not None:
                arguments = flattened(*body)
                made.fn_metadata.arg_model = arguments
                schema = arguments.model_json_schema(by_alias=True)
                if optional:
                    schema["required"] = [name for name in schema.get("required", []) if name not in optional]
                made.parameters = schema
            tools.append(made)
            return fn

        return register

    # Contacts

    @tool(READ)
    async def list_contacts(
        ctx: Context,
        search: Annotated[str | None, Field(max_length=100, description="Part of a name or phone number")] = None,
        tag: Annotated[str | None, Field(max_length=64, description="Only contacts with this tag")] = None,
        page: PageNumber = 1,
        limit: Limit = 20,
    ) -> Page[ContactOut]:
        """List the organization's contacts (customers), newest first, optionally searched by name or phone or
        filtered by tag. Use it to find a contact's id or phone before reading their conversation or messaging them."""

        async def action(session: AsyncSession, principal: Principal) -> Page[ContactOut]:
            return await contacts.list_contacts(
                session,
                organization_id=principal.organization_id,
                search=_clean(search),
                tag=_clean(tag),
                page=PageRequest(page=page, limit=limit),
            )

        return await runner.run(ctx, "contacts:read", action)

    @tool(READ)
    async def get_contact(
        ctx: Context, contact_id: Annotated[str, Field(max_length=64, description="The contact's id")]
    ) -> ContactOut:
        """Get one contact: phone (E.164), name, email, tags, marketing opt-in, custom attributes, last message time."""

        async def action(session: AsyncSession, principal: Principal) -> ContactOut:
            return await contacts.get_contact(session, organization_id=principal.organization_id, contact_id=contact_id)

        return await runner.run(ctx, "contacts:read", action)

    @tool(WRITE, body=(ContactCreate, "data"))
    async def create_contact(ctx: Context, data: ContactCreate) -> ContactOut:
        """Create a contact. `phone` is normalized to E.164 (numbers without a country code are read in the
        organization's region); a phone that already exists answers a `conflict` error. Set `optedIn` only when
        the customer agreed to marketing messages: marketing templates and broadcasts skip contacts without it."""

        async def action(session: AsyncSession, principal: Principal) -> ContactOut:
            return await contacts.create_contact(
                session,
                organization_id=principal.organization_id,
                data=data,
                source_detail=principal.api_key_id or principal.user_id,
            )

        return await runner.run(ctx, "contacts:write", action)

    # Conversations

    @tool(READ)
    async def list_conversations(
        ctx: Context,
        status: Annotated[
            ConversationStatus | None,
            Field(description="OPEN (waiting, nobody assigned), ASSIGNED (a person has it) or RESOLVED"),
        ] = None,
        page: PageNumber = 1,
        limit: Limit = 20,
    ) -> Page[ConversationOut]:
        """List conversations, most recent activity first, each with its contact, status, assignee, unread count
        and `windowExpiresAt` (until when free-form messages may be sent). Use status OPEN to find work to do."""

        async def action(session: AsyncSession, principal: Principal) -> Page[ConversationOut]:
            return await conversations.list_conversations(
                session, organization_id=principal.organization_id, status=status, page=PageRequest(page, limit)
            )

        return await runner.run(ctx, "conversations:read", action)

    @tool(READ)
    async def get_conversation(
        ctx: Context, conversation_id: Annotated[str, Field(max_length=64, description="The conversation's id")]
    ) -> ConversationDetail:
        """Get a conversation with its 50 most recent messages (newest first). Read it before replying: it tells
        whether the 24-hour window is open (`windowExpiresAt` in the future) or only a template may be sent."""

        async def action(session: AsyncSession, principal: Principal) -> ConversationDetail:
            return await conversations.get_conversation(
                session, organization_id=principal.organization_id, conversation_id=conversation_id
            )

        return await runner.run(ctx, "conversations:read", action)

    @tool(WRITE, body=(ConversationChange, "change"))
    async def update_conversation(ctx: Context, change: ConversationChange) -> ConversationDetail:
        """Assign a conversation to a person (`assigneeId`; null to unassign), resolve it (`status` RESOLVED) or
        reopen it (`status` OPEN). Assigning stops AI agents from answering in it until it is resolved."""
        update = ConversationUpdate.model_validate(change.model_dump(exclude_unset=True, exclude={"conversation_id"}))

        async def action(session: AsyncSession, principal: Principal) -> ConversationDetail:
            return await conversations.update_conversation(
                session,
                organization_id=principal.organization_id,
                conversation_id=change.conversation_id,
                data=update,
                user_id=principal.user_id,
            )

        return await runner.run(ctx, "conversations:write", action)

    # Messages

    @tool(SEND, body=(SendRequest, "request"), optional=("type",))
    async def send_message(ctx: Context, request: SendRequest) -> MessageOut:
        """Send a WhatsApp message to `to` (a phone number, E.164 preferred). `type` is one of: text (`text`),
        image / video (`mediaUrl` or `mediaId`, optional `caption`), document (`mediaUrl` or `mediaId`,
        `filename`), audio (`mediaUrl` or `mediaId`), template (`templateName`, `language`, `components`),
        interactive (`interactive`: button, list or cta_url), location (`latitude`, `longitude`, `name`,
        `address`), contact (`contacts` cards), reaction (`messageId`, `emoji`). Or give `quickReply` (a saved
        reply's shortcut) instead of `type`. Only a template may be sent when the contact has not written in the
        last 24 hours (error `outside_customer_service_window`); marketing templates need the contact's opt-in;
        at most 20 messages per hour per recipient. The answer is the message, usually `queued`: check it later
        with get_message for `delivered`, `read` or `failed` and Meta's reason."""

        async def action(session: AsyncSession, principal: Principal) -> MessageOut:
            return await messages.send_message(
                session,
                runtime=runtime,
                organization_id=principal.organization_id,
                request=request,
                sent_by_user_id=principal.user_id,
            )

        return await runner.run(ctx, "messages:send", action)

    @tool(READ)
    async def get_message(
        ctx: Context, message_id: Annotated[str, Field(max_length=64, description="The message's id")]
    ) -> MessageOut:
        """Get one message: its content, its delivery status (queued, sent, delivered, read, failed, or received
        for inbound) with the time of each step, and for a failed one Meta's error code and a readable reason."""

        async def action(session: AsyncSession, principal: Principal) -> MessageOut:
            return await messages.get_message(session, organization_id=principal.organization_id, message_id=message_id)

        return await runner.run(ctx, "messages:read", action)

    @tool(READ, body=(MessageQuery, "query"))
    async def list_messages(ctx: Context, query: MessageQuery) -> Page[MessageOut]:
        """List messages, newest first, across all conversations or in one (`conversationId`), inbound and
        outbound, with their statuses."""

        async def action(session: AsyncSession, principal: Principal) -> Page[MessageOut]:
            return await messages.list_messages(
                session,
                organization_id=principal.organization_id,
                conversation_id=query.conversation_id,
                page=PageRequest(query.page, query.limit),
            )

        return await runner.run(ctx, "messages:read", action)

    @tool(FETCH)
    async def upload_media(
        ctx: Context,
        url: Annotated[str, Field(max_length=2048, description="A public http(s) URL of the file")],
        filename: Annotated[str | None, Field(max_length=240, description="The name to show for documents")] = None,
    ) -> MediaOut:
        """Fetch a file from a public URL into the media store and get a `mediaId` to send with send_message.
        At most 16 MB; JPEG, PNG, WebP, PDF, DOCX, MP3, OGG or MP4, recognized from the bytes. URLs pointing at
        private or loopback addresses are refused."""

        async def action(session: AsyncSession, principal: Principal) -> MediaOut:
            return await upload_from_url(
                session, runtime, organization_id=principal.organization_id, url=url, filename=filename
            )

        return await runner.run(ctx, "media:write", action)

    # Templates and broadcasts

    @tool(READ)
    async def list_templates(
        ctx: Context,
        status: Annotated[str | None, Field(max_length=20, description="APPROVED, PENDING, REJECTED, ...")] = None,
        category: Annotated[
            str | None, Field(max_length=20, description="MARKETING, UTILITY or AUTHENTICATION")
        ] = None,
        language: Annotated[str | None, Field(max_length=15, description="A language code such as en_US")] = None,
        search: Annotated[str | None, Field(max_length=100, description="Part of the name")] = None,
        page: PageNumber = 1,
        limit: Limit = 20,
    ) -> Page[TemplateOut]:
        """List message templates with their components and review status. Only APPROVED templates can be sent;
        they are the only messages allowed outside the 24-hour window and the only ones a broadcast sends."""

        async def action(session: AsyncSession, principal: Principal) -> Page[TemplateOut]:
            return await templates.list_templates(
                session,
                organization_id=principal.organization_id,
                status=_clean(status),
                category=_clean(category),
                language=_clean(language),
                search=_clean(search),
                page=PageRequest(page, limit),
            )

        return await runner.run(ctx, "templates:read", action)

    @tool(SEND, body=(BroadcastCreate, "data"))
    async def send_broadcast(ctx: Context, data: BroadcastCreate) -> BroadcastOut:
        """Send an APPROVED template to many contacts: `audience` is contacts with any of `tags`, the `contactIds`
        listed, or `all` opted-in contacts. Parameter texts may use contact fields with a fallback,
        `{{contact.name|there}}`. It starts at once, or at `scheduledAt`. Marketing templates skip contacts who have
        not opted in; contacts over 20 messages/hour are skipped too. The Starter plan allows 1,000 contacts per
        broadcast. The answer carries live counts; it cannot be unsent."""

        async def action(session: AsyncSession, principal: Principal) -> BroadcastOut:
            return await broadcasts.create_broadcast(session, organization_id=principal.organization_id, data=data)

        return await runner.run(ctx, "broadcasts:write", action)

    # Analytics, AI agents, quick replies, payment links

    @tool(READ, body=(AnalyticsQuery, "query"))
    async def get_analytics(ctx: Context, query: AnalyticsQuery) -> AnalyticsOut:
        """Messaging figures over a range in the organization's time zone (default: the last 30 days): messages
        sent, delivered, read, failed and received with rates, failures by Meta error code, conversations opened
        and resolved, first-response and resolution times, per-agent and per-broadcast figures, and a series per
        day, week or month. At most 366 days by day."""

        async def action(session: AsyncSession, principal: Principal) -> AnalyticsOut:
            return await analytics.get_analytics(
                session,
                organization_id=principal.organization_id,
                start=query.start,
                end=query.end,
                granularity=query.granularity,
            )

        return await runner.run(ctx, "analytics:read", action)

    @tool(READ)
    async def list_ai_agents(ctx: Context, page: PageNumber = 1, limit: Limit = 20) -> Page[AgentOut]:
        """List the organization's AI agents: which conversations each answers (`serves`), its knowledge base, and
        when it hands a conversation to people (`handoff`)."""

        async def action(session: AsyncSession, principal: Principal) -> Page[AgentOut]:
            return await ai_agents.list_agents(
                session, organization_id=principal.organization_id, page=PageRequest(page, limit)
            )

        return await runner.run(ctx, "ai_agents:read", action)

    @tool(READ)
    async def list_quick_replies(
        ctx: Context,
        search: Annotated[
            str | None, Field(max_length=100, description="The start of a shortcut ('/tha') or part of the text")
        ] = None,
        page: PageNumber = 1,
        limit: Limit = 20,
    ) -> Page[QuickReplyOut]:
        """List saved replies. Send one with send_message and `quickReply` set to its shortcut: its text is filled
        in for the contact ({{contact.name|there}})."""

        async def action(session: AsyncSession, principal: Principal) -> Page[QuickReplyOut]:
            return await quick_replies.list_quick_replies(
                session, organization_id=principal.organization_id, search=_clean(search), page=PageRequest(page, limit)
            )

        return await runner.run(ctx, "quick_replies:read", action)

    @tool(SEND, body=(PaymentLinkCreate, "data"))
    async def create_payment_link(ctx: Context, data: PaymentLinkCreate) -> PaymentLinkOut:
        """Create a payment link for a contact (`contactId`, or `phone`: a new phone becomes a contact) through the
        organization's gateway (UPI, Razorpay or Stripe). `amount` is in minor units: 50000 is ₹500.00. With
        `send: true` the link goes out at once in the contact's WhatsApp conversation with a Pay button; that
        needs the 24-hour window open, and when it is closed nothing is created."""
        return await _create_payment_link(runner, ctx, data)

    return MCPServer(
        "kaanha",
        title="Kaanha WhatsApp Business",
        instructions=INSTRUCTIONS,
        version=__version__,
        tools=tools,
    )


async def _create_payment_link(runner: ToolRunner, ctx: Context, data: PaymentLinkCreate) -> PaymentLinkOut:
    """The REST endpoint's flow: nothing is held while the gateway answers, and a link not kept is withdrawn."""
    runtime = runner.runtime
    made: list[payment_links.MadeLink] = []

    async def action(session: AsyncSession, principal: Principal) -> PaymentLinkOut:
        new = await payment_links.check_new_link(session, runtime, organization_id=principal.organization_id, data=data)
        await session.commit()
        made.append(await payment_links.make_at_gateway(new))
        return await payment_links.store_new_link(session, runtime, made=made[0])

    try:
        return await runner.run(ctx, "payment_links:write", action)
    except BaseException:
        if made:
            await payment_links.withdraw(made[0])
        raise
