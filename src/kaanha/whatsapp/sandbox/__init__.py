"""The sandbox connection: behaves like the Cloud API without leaving the machine."""
