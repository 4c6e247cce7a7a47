"""Every ORM table; importing this package registers them all on `Model.metadata`."""

from kaanha.models.ai_agent import AiAgent, AiAgentPassage, AiAgentRun
from kaanha.models.api_key import ApiKey
from kaanha.models.base import Model, TenantModel
from kaanha.models.broadcast import Broadcast, BroadcastRecipient
from kaanha.models.consent import ConsentChange
from kaanha.models.contact import Contact, ContactTag
from kaanha.models.conversation import Conversation
from kaanha.models.conversation_opening import ConversationOpening
from kaanha.models.event import Event
from kaanha.models.idempotency import IdempotencyRecord
from kaanha.models.inbound_event import InboundEvent
from kaanha.models.job import Job
from kaanha.models.media import Media
from kaanha.models.message import Message
from kaanha.models.organization import Organization, WhatsAppConnection
from kaanha.models.payment import PaymentGatewayAccount, PaymentGatewayEvent, PaymentLink, PaymentSettings
from kaanha.models.provider_media import ProviderMedia
from kaanha.models.quick_reply import QuickReply
from kaanha.models.template import Template
from kaanha.models.user import Membership, User
from kaanha.models.webhook import WebhookAttempt, WebhookDelivery, WebhookEndpoint

__all__ = [
    "AiAgent",
    "AiAgentPassage",
    "AiAgentRun",
    "ApiKey",
    "Broadcast",
    "BroadcastRecipient",
    "ConsentChange",
    "Contact",
    "ContactTag",
    "Conversation",
    "ConversationOpening",
    "Event",
    "IdempotencyRecord",
    "InboundEvent",
    "Job",
    "Media",
    "Membership",
    "Message",
    "Model",
    "Organization",
    "PaymentGatewayAccount",
    "PaymentGatewayEvent",
    "PaymentLink",
    "PaymentSettings",
    "ProviderMedia",
    "QuickReply",
    "Template",
    "TenantModel",
    "User",
    "WebhookAttempt",
    "WebhookDelivery",
    "WebhookEndpoint",
    "WhatsAppConnection",
]
