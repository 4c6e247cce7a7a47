"""Payment gateways behind one interface: UPI (our own hosted page), Razorpay Payment Links, Stripe Checkout."""
