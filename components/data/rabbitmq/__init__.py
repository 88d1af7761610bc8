"""rabbitmq"""
