"""Kaanha: a multi-tenant WhatsApp Business platform."""

__version__ = "0.1.0"
