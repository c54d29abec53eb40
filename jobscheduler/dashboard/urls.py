app_name = "jobscheduler"
urlpatterns: list = []
