"""Payment links: a request for money sent over WhatsApp, paid by UPI, Razorpay or Stripe."""
